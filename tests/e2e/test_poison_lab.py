"""A real lab whose store holds garbage keeps working: undecodable Pod, Service and
EndpointSlice entries are written behind podnet's back, and the kubelet still starts new
pods, the agents still program new Services (reached from a pod), `podnet get` still
answers (naming the bad key), and `podnet store check` / `rm` find and remove them.
On SQLite and on a real etcd."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lablib import NETNS_ANNOTATION, probe_from

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datastore"))
from poisoning import poison  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 8080
GARBAGE = [("Pod", "default", "bad-pod", b"\xff\xfe not json"),
           ("Service", "default", "bad-svc", b"[1, 2, 3]"),
           ("EndpointSlice", "default", "bad-slice", b'{"kind": "EndpointSlice", "metadata": "x"}'),
           ("Node", "", "bad-node", b"{")]


def app(name: str, replicas: int) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: {PORT}}}]
"""


def cluster_ip(lab, name: str) -> str:
    s = lab.store()
    try:
        return s.get("Service", "default", name).cluster_ips[0]
    finally:
        s.close()


def reach_until(netns: str, ip: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        [(_, answer)] = probe_from(netns, [(ip, 80, "TCP")])
        if not answer.startswith("ERROR") or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


@pytest.mark.parametrize("datastore", ["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def test_garbage_in_the_store_and_the_lab_keeps_converging(make_lab, datastore):
    lab = make_lab("--nodes", "2", "--datastore", datastore)
    lab.podnet("apply", "-f", "-", input=app("web", 2))
    web = lab.wait_pods(2, app="web")
    store = lab.store()
    try:
        revs = {f"{k}/{ns}/{n}": poison(store, k, ns, n, v) for k, ns, n, v in GARBAGE}
    finally:
        store.close()

    # The kubelet starts new pods; the agents program the new Service; a pod reaches it.
    lab.podnet("apply", "-f", "-", input=app("after", 2))
    after = lab.wait_pods(2, app="after")
    answer = reach_until(web[0].annotations[NETNS_ANNOTATION], cluster_ip(lab, "after"))
    assert not answer.startswith("ERROR"), answer
    assert any(p.name in answer for p in after), answer
    nodes = lab.podnet("get", "nodes", "-o", "wide")
    assert nodes.stdout.count("healthy") == 2, nodes.stdout

    got = lab.podnet("get", "pods", "-o", "name")
    assert sorted(got.stdout.split()) == sorted(f"pod/{p.name}" for p in web + after)
    assert f"skipped Pod/default/bad-pod (revision {revs['Pod/default/bad-pod']})" in got.stderr
    check = lab.podnet("store", "check", check=False)
    assert check.returncode == 1
    assert sorted(line.split()[0] for line in check.stdout.splitlines()[1:]) == sorted(revs)
    lab.podnet("store", "rm", *revs)
    assert lab.podnet("store", "check").stdout == "no undecodable entries\n"

    # And after the clean-up, still converging: scale up, the new pod is reached too.
    lab.podnet("apply", "-f", "-", input=app("after", 3))
    after = lab.wait_pods(3, app="after")
    seen = {reach_until(web[1].annotations[NETNS_ANNOTATION], cluster_ip(lab, "after"))
            for _ in range(30)}
    assert all(not a.startswith("ERROR") for a in seen), seen
