"""The lab in Kubernetes mode (issue 15 §2, first step): `podnet up --datastore kubernetes`
runs the API server over the lab's SQLite store and every other lab process (agents, CNI
daemons, kubelet and its controllers, DNS pods, the CLI) on the Kubernetes datastore, so
the API server is the only process with the store open."""
from __future__ import annotations

import os

import pytest

from lablib import all_pairs, manifests

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.kubernetes]
PORT = 8181


def holders(path: str) -> list[str]:
    """Command lines of the processes that have `path` (or its -wal/-shm) open."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            if any(f.startswith(path) for f in fds):
                out.append(open(f"/proc/{pid}/cmdline").read().replace("\0", " "))
        except OSError:
            continue
    return out


def test_kubernetes_mode_lab_pod_to_pod_and_only_the_api_server_holds_the_store(make_lab):
    lab = make_lab("--nodes", "2", "--datastore", "kubernetes")
    url = (lab.dir / "datastore.url").read_text().strip()
    assert url == f"kubernetes://?kubeconfig={lab.dir / 'kubeconfig'}"
    out = lab.podnet("get", "nodes", "-o", "wide").stdout
    assert out.count("healthy") == 2
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    pods = lab.wait_pods(4)
    assert {p.node_name for p in pods} == {"n1", "n2"}
    failures = all_pairs(pods, PORT, families=(4,))
    assert not failures, "\n".join(failures[:20])
    # the IPAM wrote its blocks through the API, as custom resources
    from podnet.datastore.interface import open_datastore
    api = open_datastore(url)
    try:
        affinities = {b.spec.get("affinity") for b in api.list("IPAMBlock").items}
    finally:
        api.close()
    assert {"host:n1", "host:n2"} <= affinities
    users = holders(str(lab.dir / "store.db"))
    assert len(users) == 1 and " apiserver " in users[0], users
    node_identities_only(lab)


def node_identities_only(lab) -> None:
    """Issue 15 §1 Identity: each node's agent and CNI daemon run with that node's
    kubeconfig only (so the Nodes registered and the blocks written above were written as
    system:node:<name>), and those credentials write neither a Service nor another Node."""
    import json
    import ssl
    import urllib.error
    import urllib.request

    import yaml
    for node in ("n1", "n2"):
        own = f"kubeconfig={lab.dir / f'kubeconfig-incluster-{node}'}"
        cmdlines = [c for c in (open(f"/proc/{p}/cmdline").read().replace("\0", " ")
                                for p in filter(str.isdigit, os.listdir("/proc"))
                                if os.path.exists(f"/proc/{p}/cmdline"))
                    if str(lab.dir) in c and (f"--node {node} " in c or "podnet.cni.daemon" in c)
                    and (f"--node {node} " in c or own in c)]
        assert len([c for c in cmdlines if "podnet.cni.daemon" in c]) == 1, cmdlines
        assert all(own in c for c in cmdlines) and len(cmdlines) >= 2, cmdlines
    cfg = yaml.safe_load((lab.dir / "kubeconfig-incluster-n1").read_text())
    token = cfg["users"][0]["user"]["token"]
    server = yaml.safe_load((lab.dir / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(lab.dir / "pki" / "ca.crt"))

    def post(path: str, body: dict) -> int:
        req = urllib.request.Request(server + path, json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "evil"},
           "spec": {"ports": [{"port": 80}]}}
    assert post("/api/v1/namespaces/default/services", svc) == 403
    assert post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n9"}}) == 403


def test_kubernetes_mode_survives_an_api_server_restart(make_lab):
    """Issue 15 §4: the API server is killed; traffic between the pods keeps flowing (the
    data plane is the kernel's), and once it is back on the same addresses the agents,
    CNI daemons and kubelet resume their watches: a pod made afterwards gets an address
    and reaches, and is reached by, the pods from before."""
    import signal
    import time
    from urllib.parse import urlsplit

    from podnet.lab import apiserver
    from podnet.lab.state import LabState
    from podnet.lab.topology import spec_from_dict

    lab = make_lab("--nodes", "2", "--datastore", "kubernetes")
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    pods = lab.wait_pods(4)
    state = LabState(lab.dir)
    meta = state.read_meta()
    pid = state.pids()["apiserver"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    failures = all_pairs(pods, PORT, families=(4,))
    assert not failures, "with the API server down: " + "\n".join(failures[:10])
    port = urlsplit(meta["apiserver"]["server"]).port
    apiserver.start(spec_from_dict(meta["spec"]), state, meta["datastoreURLs"]["apiserver"],
                    lambda _s: None, port)
    lab.podnet("apply", "-f", "-", input=manifests(3, 2, PORT))   # one more replica
    after = lab.wait_pods(5, timeout=90)
    assert {p.name for p in pods} < {p.name for p in after}
    failures = all_pairs(after, PORT, families=(4,))
    assert not failures, "after the restart: " + "\n".join(failures[:10])
