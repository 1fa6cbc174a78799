"""`podnet agent` refuses the machine's own network namespace (lab safety rule 1).

The agent runs in an anonymous network namespace (`unshare --net`), which the guard must
refuse exactly as it refuses the machine's own (neither has a name under /run/netns), so a
broken guard can only touch a namespace that dies with the test."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from needs import missing


def _unshare_net() -> list[str]:
    if shutil.which("unshare") is None:
        missing("needs util-linux's unshare")
    # without root, a user namespace of our own owns the new network namespace
    return ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]


def test_agent_refuses_to_run_in_an_unnamed_namespace(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PODNET_AGENT_ALLOW_HOST_NETNS"}
    cp = subprocess.run([*_unshare_net(), sys.executable, "-m", "podnet.cli.main", "--datastore",
                         f"sqlite:///{tmp_path}/s.db", "agent", "--node", "n1"],
                        capture_output=True, text=True, env=env, timeout=60)
    if cp.stderr.startswith("unshare: "):  # no namespace for us here (no root, no user namespaces)
        missing(f"cannot make a network namespace to run the agent in: {cp.stderr.strip()}")
    assert cp.returncode == 1, cp.stderr
    assert "refusing to run in an unnamed network namespace" in cp.stderr
    assert not (tmp_path / "s.db").exists()  # it stopped before touching anything
