"""A 3-node dual-stack lab on SQLite: pods, Deployments, pod-to-pod without NAT, teardown.

One lab for the module (built once, torn down by the fixture whatever happens); the
tests run in file order and build on each other's state, like a user session.
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from lablib import all_pairs, manifests, netns_list, probe_from, root_ns_snapshot

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 8080


@pytest.fixture(scope="module")
def session(make_lab):
    before = root_ns_snapshot()
    lab = make_lab("--nodes", "3", "--dual-stack")
    lab.podnet("apply", "-f", "-", input=manifests(6, 6, PORT, pinned={1: "n3", 2: "n3"}))
    pods = lab.wait_pods(12)
    return {"lab": lab, "before": before, "pods": pods}


def test_nodes_registered_with_addresses_blocks_and_health(session):
    lab = session["lab"]
    out = lab.podnet("get", "nodes", "-o", "wide").stdout
    for i in (1, 2, 3):
        assert f"198.18.0.1{i}" in out and f"fd00:198:18::1{i}" in out
    assert out.count("healthy") == 3
    s = lab.store()
    try:
        nodes = {n.name: n for n in s.list("Node").items}
    finally:
        s.close()
    assert set(nodes) == {"n1", "n2", "n3"}
    for n in nodes.values():
        assert n.status["agent"]["syncs"] >= 1 and n.status["agent"]["lastError"] == ""
        assert n.status["podnet"]["blocks"], f"{n.name} claimed no block"


def test_pods_spread_and_pinned_pods_stay(session):
    pods = session["pods"]
    by_name = {p.name: p for p in pods}
    assert by_name["p1"].node_name == "n3" and by_name["p2"].node_name == "n3"
    counts = {n: sum(p.node_name == n for p in pods) for n in ("n1", "n2", "n3")}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    for p in pods:
        v = {ipaddress.ip_address(ip).version for ip in p.pod_ips}
        assert v == {4, 6} and p.status["podIP"] == p.pod_ips[0]
        assert p.status["hostIP"].startswith("198.18.0.1") and p.phase == "Running"
        assert p.annotations["podnet.io/netns"] in netns_list()
    web = [p for p in pods if p.labels.get("app") == "web"]
    assert len(web) == 6
    for p in web:
        ref = p.metadata["ownerReferences"][0]
        assert ref["kind"] == "Deployment" and ref["name"] == "web"
        assert p.name.startswith("web-") and len(p.name.split("-")[-1]) == 5


def test_every_pod_reaches_every_pod_without_nat(session):
    failures = all_pairs(session["pods"], PORT)
    assert not failures, "\n".join(failures[:20])


def test_exec_runs_in_the_pod_and_passes_the_exit_code(session):
    lab = session["lab"]
    p = next(p for p in session["pods"] if p.name == "p3")
    out = lab.podnet("exec", "p3", "--", "ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert all(ip in out for ip in p.pod_ips)
    assert lab.podnet("exec", "p3", "--", "sh", "-c", "exit 3", check=False).returncode == 3
    other = next(q for q in session["pods"] if q.node_name != p.node_name)
    out = lab.podnet("exec", "p3", "--", "curl", "-s", "-m", "3", f"http://{other.pod_ips[0]}:{PORT}/").stdout
    assert out.strip() == f"default/{other.name} {p.pod_ips[0]}"
    for ip in other.pod_ips:  # ICMP and ICMPv6 across nodes too
        assert lab.podnet("exec", "p3", "--", "ping", "-c", "1", "-W", "3", ip, check=False).returncode == 0
    assert lab.podnet("exec", "nope", "--", "true", check=False).returncode == 1


def test_nodes_reach_the_outside_world_through_the_router(session):
    lab = session["lab"]
    ns = f"pn-{lab.name}-n2"
    [(_, ans)] = probe_from(ns, [("203.0.113.10", 80, "TCP")])
    assert ans == "outside/echo 198.18.0.12"
    [(_, ans)] = probe_from(ns, [("fd00:203:113::10", 9000, "UDP")])
    assert ans == "outside/echo fd00:198:18::12"
    # the outside world's DNS is the nodes' resolver (/etc/netns/<node>/resolv.conf)
    dig = subprocess.run(["ip", "netns", "exec", ns, "dig", "+short", "+time=2", "www.example.test",
                          "AAAA", "www.example.test", "A"], capture_output=True, text=True).stdout
    assert dig.split() == ["fd00:203:113::10", "203.0.113.10"]


def _deploy(lab, replicas: int) -> None:
    lab.podnet("apply", "-f", "-", input=manifests(replicas, 0, PORT))


def test_scaling_the_deployment_up_and_down(session):
    lab = session["lab"]
    _deploy(lab, 9)
    web = lab.wait_pods(9, app="web")
    assert not all_pairs(web[:3] + web[-3:], PORT, protos=("TCP",))
    _deploy(lab, 2)
    web = lab.wait_pods(2, app="web")
    s = lab.store()
    try:
        dep = s.get("Deployment", "default", "web")
    finally:
        s.close()
    assert dep.status.get("replicas") == 2
    assert len(lab.wait_pods(8)) == 8  # 6 pods + 2 replicas


def _allocated_ips(lab) -> set[str]:
    s = lab.store()
    try:
        blocks = s.list("IPAMBlock").items
    finally:
        s.close()
    out = set()
    for b in blocks:
        net = ipaddress.ip_network(b.spec["cidr"])
        out |= {str(net[int(o)]) for o in (b.spec.get("allocations") or {})}
    return out


def test_deleting_a_pod_releases_its_ips_and_netns(session):
    lab = session["lab"]
    p = next(p for p in lab.pods() if p.name == "p4")
    assert set(p.pod_ips) <= _allocated_ips(lab)
    netns = p.annotations["podnet.io/netns"]
    before = len(lab.pods("default"))
    lab.podnet("delete", "pod", "p4")
    lab.wait_pods(before - 1)
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (set(p.pod_ips) & _allocated_ips(lab) or netns in netns_list()):
        time.sleep(0.1)
    assert not set(p.pod_ips) & _allocated_ips(lab)
    assert netns not in netns_list()


def test_ipam_check_finds_the_lab_consistent(session):
    """On a real lab every allocation belongs to a running pod and every pod's address is
    allocated: `podnet ipam check` says so (exit 0), and it knows each pod's addresses."""
    lab = session["lab"]
    cp = lab.podnet("ipam", "check", "-o", "json", check=False)
    doc = json.loads(cp.stdout)
    assert cp.returncode == 0 and doc["clean"] and doc["missing"] == [], cp.stdout
    live = {a["address"]: a["pod"] for a in doc["allocations"] if a["status"] == "live"}
    for p in lab.pods():
        for ip in p.pod_ips:
            assert live[ip] == f"{p.namespace}/{p.name}"


FIXED_IP_POD = """apiVersion: v1
kind: Namespace
metadata: {name: fixed}
---
apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: fixed
  annotations: {%s: '%s'}
spec:
  nodeName: %s
  containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]
"""


def test_pods_with_fixed_addresses_get_them_and_only_one_holds_each(session):
    """podnet's ipAddrs annotation, and Calico's: the kubelet passes them to the plugin as
    the `ips` capability; an address in use leaves the second pod waiting until it is free."""
    lab = session["lab"]
    lab.podnet("apply", "-f", "-", input=FIXED_IP_POD % ("fixed-a", "podnet.io/ipAddrs",
                                                          '["10.244.250.5", "fd00:10:244:fa::5"]', "n2"))
    (a,) = lab.wait_pods(1, namespace="fixed")
    assert a.pod_ips == ["10.244.250.5", "fd00:10:244:fa::5"]
    for ip in a.pod_ips:  # from a pod on another node, without NAT
        assert lab.podnet("exec", "p3", "--", "ping", "-c", "1", "-W", "2", ip, check=False).returncode == 0
    lab.podnet("apply", "-f", "-", input=FIXED_IP_POD % ("fixed-b", "cni.projectcalico.org/ipAddrs",
                                                          '["10.244.250.5"]', "n1"))
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        b = next((p for p in lab.pods("fixed") if p.name == "fixed-b"), None)
        if b is not None and "already allocated" in str(b.status.get("message")):
            break
        time.sleep(0.1)
    assert b is not None and not b.pod_ips and "10.244.250.5 is already allocated to n2/" in b.status["message"]
    lab.podnet("delete", "pod", "fixed-a", "-n", "fixed")
    (b,) = lab.wait_pods(1, namespace="fixed", timeout=30)
    assert b.name == "fixed-b" and b.node_name == "n1" and b.pod_ips[0] == "10.244.250.5"
    assert lab.podnet("exec", "p3", "--", "ping", "-c", "1", "-W", "2", "10.244.250.5", check=False).returncode == 0
    lab.podnet("delete", "pod", "fixed-b", "-n", "fixed")
    lab.podnet("delete", "namespace", "fixed")


def test_pods_reach_the_outside_world_through_nat_outgoing(session):
    lab = session["lab"]
    p = next(p for p in lab.pods() if p.name == "p5")
    node_ip = p.status["hostIP"]
    out = lab.podnet("exec", "p5", "--", "curl", "-s", "-m", "3", "http://203.0.113.10/").stdout
    assert out.strip() == f"outside/echo {node_ip}"  # SNATed to the node: the outside has no pod route


COMMAND_POD = """apiVersion: v1
kind: Pod
metadata: {name: own, namespace: kube-system}
spec:
  containers:
  - name: srv
    image: x
    command: ["podnet", "serve", "--name", "custom/own", "--port", "7000/TCP", "--port", "7000/UDP"]
    ports: [{containerPort: 7000}, {containerPort: 7000, protocol: UDP}]
  - name: side
    image: x
    ports: [{containerPort: 7001}]
"""


def test_a_container_with_a_command_runs_it_in_the_pod(session):
    lab = session["lab"]
    lab.podnet("apply", "-f", "-", input=COMMAND_POD)
    import time
    deadline = time.monotonic() + 30
    while True:
        own = next((p for p in lab.pods() if p.name == "own"), None)
        if own is not None and own.ready:
            break
        assert time.monotonic() < deadline, f"pod own not ready: {own and own.status}"
        time.sleep(0.1)
    src = next(p for p in lab.pods() if p.name == "p3")
    targets = [(own.pod_ips[0], 7000, "TCP"), (own.pod_ips[1], 7000, "UDP"), (own.pod_ips[0], 7001, "TCP")]
    answers = [a for _, a in probe_from(src.annotations["podnet.io/netns"], targets)]
    assert answers == [f"custom/own {src.pod_ips[0]}", f"custom/own {src.pod_ips[1]}",
                       f"kube-system/own {src.pod_ips[0]}"]
    # containers of one pod share its namespace: the side container reaches srv on localhost
    out = lab.podnet("exec", "-n", "kube-system", "own", "-c", "side", "--", "curl", "-s", "-m", "2",
                     "http://127.0.0.1:7000/").stdout
    assert out.strip() == "custom/own 127.0.0.1"
    pid_files = list((lab.dir / "pids").glob("pod-*-own-srv.pid"))
    assert len(pid_files) == 1
    first = int(pid_files[0].read_text())
    # restartPolicy Always: a container that dies is started again, and counted
    os.kill(first, 9)
    deadline = time.monotonic() + 20
    while True:
        own = next(p for p in lab.pods() if p.name == "own")
        counts = {c["name"]: c.get("restartCount") for c in own.status.get("containerStatuses") or []}
        if counts.get("srv") == 1:
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)
    pid = int(pid_files[0].read_text())
    assert pid != first
    deadline = time.monotonic() + 10
    while probe_from(src.annotations["podnet.io/netns"], targets[:1])[0][1] != answers[0]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    lab.podnet("delete", "pod", "own", "-n", "kube-system")
    deadline = time.monotonic() + 20
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_the_lab_wires_services_endpointslices_and_cluster_dns(session):
    """What the lab runs for the other parts: the EndpointSlice controller beside the
    kubelet, the cluster DNS pods (an addon), the agents' service proxy."""
    lab = session["lab"]
    lab.podnet("apply", "-f", "-", input=SERVICE)
    web = {p.name for p in lab.wait_pods(2, app="web")}
    import time
    deadline = time.monotonic() + 30
    while True:
        out = lab.podnet("exec", "p3", "--", "curl", "-s", "-m", "2", "http://web.default.svc.cluster.local/",
                         check=False).stdout.strip()
        if out.split(" ")[0].split("/")[-1] in web:
            break
        assert time.monotonic() < deadline, f"no answer through the Service by name: {out!r}"
        time.sleep(0.3)
    lab.podnet("delete", "service", "web")


def test_down_leaves_nothing_behind(session):
    lab = session["lab"]
    pids = [int(f.read_text()) for f in (lab.dir / "pids").glob("*.pid")]
    assert len(pids) >= 3 + 3 + 1  # agents, servers, kubelet (+ echo)
    out = lab.podnet("down", "--name", lab.name).stdout
    assert "down" in out
    assert not [n for n in netns_list() if n.startswith(f"pn-{lab.name}-")]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"
    assert not lab.dir.exists()
    assert not [d for d in (os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else [])
                if d.startswith(f"pn-{lab.name}-")]
    assert not (lab.home / "current").exists()
    after = root_ns_snapshot()
    assert after == session["before"], json.dumps({k: (session["before"][k], after[k])
                                                   for k in after if after[k] != session["before"][k]})
