"""The lab in Kubernetes mode (issue 15 §2, first step): `podnet up --datastore kubernetes`
runs the API server over the lab's SQLite store and every other lab process (agents, CNI
daemons, kubelet and its controllers, DNS pods, the CLI) on the Kubernetes datastore, so
the API server is the only process with the store open."""
from __future__ import annotations

import os
import sys

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
    dns_and_policy(lab, pods)
    nat_and_trace(lab, pods)


def nat_and_trace(lab, pods) -> None:
    """The same lab, CI's Kubernetes-mode subset (issue 15 §2) continued: a pod reaches the
    outside world with NAT outgoing (the outside sees its node's address), and `podnet
    trace` (reading the cluster through the API) predicts a pod-to-pod path the kernel
    confirms."""
    import json
    from lablib import probe_from
    from podnet.api.defaults import NETNS_ANNOTATION
    node_ip = {"n1": "198.18.0.11", "n2": "198.18.0.12"}
    web = [p for p in pods if p.labels.get("app") == "web"]
    src = web[0]
    [(_, ans)] = probe_from(src.annotations[NETNS_ANNOTATION], [("203.0.113.10", 80, "TCP")])
    assert ans == f"outside/echo {node_ip[src.node_name]}", ans
    dst = next(p for p in web if p.name != src.name)
    cp = lab.podnet("trace", "--lab", lab.name, src.name, f"{dst.pod_ips[0]}:{PORT}", "-o", "json", check=False)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    conf = json.loads(cp.stdout)["confirmation"]
    assert conf["ok"], [c["line"] for c in conf["checks"] if not c["ok"]]


def dns_and_policy(lab, pods) -> None:
    """The same lab, for CI's Kubernetes-mode subset (issue 15 §2): the cluster DNS (its
    pods on the Kubernetes datastore) answers a Service's name from a pod, and a
    NetworkPolicy written through the API is enforced by every node's agent."""
    import json
    import time
    from lablib import probe_from
    from podnet.api.defaults import NETNS_ANNOTATION
    lab.wait_pods(2, namespace="kube-system")
    lab.podnet("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": PORT}]}}))
    store = lab.store()
    try:
        vip = store.get("Service", "default", "web").spec["clusterIP"]
    finally:
        store.close()
    dig = lab.podnet("exec", "p1", "--", "dig", "+short", "+time=2", "+tries=3",
                     "web.default.svc.cluster.local").stdout.split()
    assert dig == [vip], dig
    web = [p for p in pods if p.labels.get("app") == "web"]
    solo = [p for p in pods if p.labels.get("app") == "solo"]
    lab.podnet("apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "solo-closed"},
        "spec": {"podSelector": {"matchLabels": {"app": "solo"}}, "policyTypes": ["Ingress"]}}))
    targets = [(p.pod_ips[0], PORT, "TCP") for p in (*solo, *web)]
    deadline = time.monotonic() + 30
    while True:
        answers = [a for _, a in probe_from(web[0].annotations[NETNS_ANNOTATION], targets)]
        got = [not a.startswith("ERROR") for a in answers]
        if got == [False] * len(solo) + [True] * len(web):
            return
        assert time.monotonic() < deadline, list(zip(targets, answers))
        time.sleep(0.5)


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


ECHO_PORT = 9099
ECHO_SERVER = r"""
import socket, threading
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(16)
def serve(c):
    while True:
        data = c.recv(100)
        if not data:
            return
        c.sendall(data)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
""" % ECHO_PORT
ECHO_CLIENT = r"""
import socket, sys, time
def connect(ip):
    for _ in range(100):   # the echo servers may still be starting
        try:
            return socket.create_connection((ip, %d), timeout=5)
        except OSError:
            time.sleep(0.1)
    raise SystemExit("cannot connect to " + ip)
conns = [connect(ip) for ip in sys.argv[1:]]
print("connected", flush=True)
for line in sys.stdin:
    out = []
    for c in conns:
        try:
            c.sendall(line.encode())
            out.append(c.recv(100).decode().strip() or "closed")
        except OSError as e:
            out.append(type(e).__name__)
    print(" ".join(out), flush=True)
""" % ECHO_PORT


def _echo_once(netns: str, ip: str) -> bool:
    """A new connection to ip:ECHO_PORT from the netns is answered."""
    import subprocess
    code = ("import socket; c = socket.create_connection((%r, %d), timeout=3); c.sendall(b'x'); "
            "assert c.recv(10) == b'x'") % (ip, ECHO_PORT)
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code],
                          capture_output=True, timeout=30).returncode == 0


def _nft_table(netns: str, table: str) -> bool:
    import subprocess
    return subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", table],
                          capture_output=True).returncode == 0


def _restart_agent(lab, node: str, *extra: str) -> int:
    """kill -9 the node's agent, start it again (with `extra` options); wait for its first
    sync as its Node's annotation reports it (a heartbeat after the kill)."""
    import signal
    import time
    from podnet.api.objects import node_report
    from podnet.datastore.common import now_rfc3339
    from podnet.lab import procs
    from podnet.lab.state import LabState
    from podnet.lab.topology import spec_from_dict
    from podnet.lab.up import agent_argv
    state = LabState(lab.dir)
    meta = state.read_meta()
    spec = spec_from_dict(meta["spec"])
    pid = state.pids()[f"agent-{node}"]
    os.kill(pid, signal.SIGKILL)
    while procs.alive(pid):
        time.sleep(0.05)
    killed_at = now_rfc3339()
    url = meta["datastoreURLs"][f"agent-{node}"]
    new = procs.spawn(state, f"agent-{node}", [*agent_argv(spec, node, url, state), *extra],
                      netns=spec.node(node).netns)
    store = lab.store()
    try:
        deadline = time.monotonic() + 120
        while True:
            agent = node_report(store.get("Node", "", node), "agent")
            if str(agent.get("heartbeat") or "") > killed_at and agent.get("syncs", 0) >= 1:
                return new
            assert time.monotonic() < deadline and procs.alive(new), f"agent-{node} did not come back"
            time.sleep(0.2)
    finally:
        store.close()


def test_kubernetes_mode_agent_kill9_and_services_left_to_kube_proxy(make_lab):
    """Issue 15 §4 (agent restart) and read-only Services: in a Kubernetes-mode lab each
    agent is killed with SIGKILL and started again: it converges back (its first sync
    reported through the API), connections established before (pod to pod, and through a
    ClusterIP) carry on, and every pod still reaches every pod. Then n1's agent is started
    with `--services kube-proxy`: its `podnet-svc` table is gone (n2 keeps its own), pods
    still reach each other, and from n1 the ClusterIP is no longer answered (no kube-proxy
    runs in the lab, so no one else renders it)."""
    import json
    import subprocess
    from podnet.api.defaults import NETNS_ANNOTATION

    lab = make_lab("--nodes", "2", "--datastore", "kubernetes")
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT, pinned={1: "n1", 2: "n2"}))
    lab.podnet("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "solo"}, "ports": [{"port": ECHO_PORT}]}}))
    pods = lab.wait_pods(4)
    by_name = {p.name: p for p in pods}
    p1, p2 = by_name["p1"], by_name["p2"]
    store = lab.store()
    try:
        vip = store.get("Service", "default", "echo").spec["clusterIP"]
    finally:
        store.close()
    procs_started: list[subprocess.Popen] = []
    try:
        for p in (p1, p2):
            procs_started.append(subprocess.Popen(
                ["ip", "netns", "exec", p.annotations[NETNS_ANNOTATION], sys.executable, "-c", ECHO_SERVER]))
        client = subprocess.Popen(
            ["ip", "netns", "exec", p1.annotations[NETNS_ANNOTATION], sys.executable, "-c", ECHO_CLIENT,
             p2.pod_ips[0], vip], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs_started.append(client)
        assert client.stdin is not None and client.stdout is not None

        def exchange(word: str) -> str:
            client.stdin.write(word + "\n")
            client.stdin.flush()
            return client.stdout.readline().strip()
        line = client.stdout.readline().strip()
        assert line == "connected", line
        assert exchange("before") == "before before"
        for node in ("n1", "n2"):
            _restart_agent(lab, node)
        assert exchange("after") == "after after", "an established connection broke"
        failures = all_pairs(pods, PORT, families=(4,))
        assert not failures, "after the agents' restarts: " + "\n".join(failures[:10])

        # Services left to kube-proxy on n1
        n1_ns, n2_ns = (f"pn-{lab.name}-{n}" for n in ("n1", "n2"))
        assert _nft_table(n1_ns, "podnet-svc")
        _restart_agent(lab, "n1", "--services", "kube-proxy")
        assert not _nft_table(n1_ns, "podnet-svc") and _nft_table(n2_ns, "podnet-svc")
        failures = all_pairs(pods, PORT, families=(4,))
        assert not failures, "with Services left to kube-proxy: " + "\n".join(failures[:10])
        from_n1 = _echo_once(p1.annotations[NETNS_ANNOTATION], vip)
        from_n2 = _echo_once(p2.annotations[NETNS_ANNOTATION], vip)
        assert (from_n1, from_n2) == (False, True)
    finally:
        for proc in procs_started:
            proc.kill()
            proc.wait(10)
