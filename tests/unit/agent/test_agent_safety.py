"""`podnet agent` refuses the machine's own network namespace (lab safety rule 1)."""
from __future__ import annotations

import os
import subprocess
import sys

from podnet.dataplane.net.sysctl import current_netns_name


def test_agent_refuses_to_run_in_the_machines_namespace(tmp_path):
    assert current_netns_name() is None  # the test itself runs in the machine's namespace
    env = {k: v for k, v in os.environ.items() if k != "PODNET_AGENT_ALLOW_HOST_NETNS"}
    cp = subprocess.run([sys.executable, "-m", "podnet.cli.main", "--datastore",
                         f"sqlite:///{tmp_path}/s.db", "agent", "--node", "n1"],
                        capture_output=True, text=True, env=env, timeout=60)
    assert cp.returncode == 1
    assert "refusing to run in an unnamed network namespace" in cp.stderr
    assert not (tmp_path / "s.db").exists()  # it stopped before touching anything
