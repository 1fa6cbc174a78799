"""deploy/podnet.yaml through the real kubectl to a lab's API server with --dry-run=server,
for the kinds that server serves (Deployments, Services); issue 15 §3. The others
(DaemonSet, RBAC, Secrets, CRDs) are checked offline in tests/unit/test_deploy_manifests.py."""
from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lablib import Lab

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
SERVED = ("Deployment", "Service")


def test_served_kinds_pass_a_server_dry_run(lab_home):
    docs = [d for d in yaml.safe_load_all((REPO / "deploy/podnet.yaml").read_text())
            if d and d["kind"] in SERVED]
    assert len(docs) == 3
    lab = Lab("dep" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "1")
        env = {**lab.env, "KUBECONFIG": str(lab.dir / "kubeconfig"), "HOME": str(lab.home)}
        cp = subprocess.run([KUBECTL, "apply", "--dry-run=server", "-f", "-"], env=env, text=True,
                            input=yaml.safe_dump_all(docs), capture_output=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.count("(server dry run)") == 3, cp.stdout
        # a dry run writes nothing: the controllers Deployment does not exist afterwards
        get = subprocess.run([KUBECTL, "-n", "kube-system", "get", "deploy", "podnet-controllers"],
                             env=env, text=True, capture_output=True, timeout=60)
        assert get.returncode != 0 and "NotFound" in get.stderr, get.stdout + get.stderr
    finally:
        lab.down()
