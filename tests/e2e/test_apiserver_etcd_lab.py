"""The Kubernetes API over a lab on etcd: the same server, with etcd's revisions and watch
(issue 14 §2: every podnet cluster serves the API, on SQLite or etcd)."""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lablib import Lab

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


@pytest.fixture(scope="module")
def lab(lab_home):
    lab = Lab("api" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--datastore", "etcd", timeout=180)
        yield lab
    finally:
        lab.down()


def kubectl(lab, *args, input=None, check=True):
    env = {**lab.env, "KUBECONFIG": str(lab.dir / "kubeconfig"), "HOME": str(lab.home)}
    cp = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, input=input, timeout=60)
    if check and cp.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
    return cp


def test_apply_watch_conflict_and_cascade_on_etcd(lab):
    from kubernetes import client as k8s, config, watch
    assert "etcd" in (lab.dir / "datastore.url").read_text()
    kubectl(lab, "apply", "--server-side", "-f", str(REPO / "examples" / "web.yaml"))
    lab.wait_pods(3, app="web")
    api = config.new_client_from_config(str(lab.dir / "kubeconfig"))
    core = k8s.CoreV1Api(api)
    rv = core.list_namespaced_service("default").metadata.resource_version
    kubectl(lab, "apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "late"}, "spec": {"ports": [{"port": 80}]}}))
    w = watch.Watch()
    names = []
    for ev in w.stream(core.list_namespaced_service, "default", resource_version=rv, timeout_seconds=10):
        names.append((ev["type"], ev["object"].metadata.name))
        if ev["object"].metadata.name == "late":
            w.stop()
    assert names == [("ADDED", "late")]
    svc = core.read_namespaced_service("late", "default")
    core.patch_namespaced_service("late", "default", {"metadata": {"labels": {"x": "1"}}})
    svc.metadata.labels = {"x": "2"}
    with pytest.raises(k8s.ApiException) as e:
        core.replace_namespaced_service("late", "default", svc)
    assert e.value.status == 409
    kubectl(lab, "delete", "deployment", "web")
    # the cascade marks the pods terminating at once; their kubelet ends them (issue 17 §1)
    deadline = time.monotonic() + 20
    while pods := json.loads(kubectl(lab, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]:
        assert all(p["metadata"].get("deletionTimestamp") for p in pods), pods
        assert time.monotonic() < deadline, "the Deployment's pods stayed"
        time.sleep(0.2)
