"""Services in a 2-node dual-stack lab, by real connections from pods (and from the
outside world) to ClusterIPs and NodePorts: uniform choice over 3 endpoints, ClientIP
affinity, deleted and unready pods leaving the choice within 2 s, refusal without
endpoints, NodePort, hairpin, IPv6, UDP, and SCTP rules (real SCTP where the kernel has it);
internal/externalTrafficPolicy Local with the endpoint on n1 only.
Finally the nodes report their agents' sync counts.

One lab for the module (always torn down); tests run in file order on its state.
"""
from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from lablib import NETNS_ANNOTATION, Lab
from podnet.dataplane.net.sysctl import call_in_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 8080
CHI2_DF2_P001 = 13.816  # chi-square critical value, 2 degrees of freedom, p = 0.001


def workloads(flag_dir: Path) -> str:
    # ready while no file `unready-<pod name>` exists: how the test makes a pod unready
    probe = f"test ! -e {flag_dir}/unready-$HOSTNAME"
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: srv
        image: podnet/serve
        ports: [{{name: http, containerPort: {PORT}}}, {{name: dns, containerPort: {PORT}, protocol: UDP}},
                {{name: sctp, containerPort: 9000, protocol: SCTP}}]
        readinessProbe:
          exec: {{command: [sh, -c, '{probe}']}}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ipFamilyPolicy: RequireDualStack
  ports: [{{name: http, port: 80, targetPort: http}}, {{name: dns, port: 53, protocol: UDP, targetPort: dns}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-np}}
spec:
  type: NodePort
  selector: {{app: web}}
  ipFamilyPolicy: PreferDualStack
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  selector: {{app: nobody}}
  ports: [{{name: t, port: 80, targetPort: {PORT}}}, {{name: u, port: 53, protocol: UDP, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: hair}}
spec:
  selector: {{app: hair}}
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sctp}}
spec:
  selector: {{app: web}}
  ports: [{{port: 9000, protocol: SCTP, targetPort: sctp}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: hairpin, labels: {{app: hair}}}}
spec:
  nodeName: n2
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: itp-local}}
spec:
  selector: {{app: loc}}
  internalTrafficPolicy: Local
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: etp-local}}
spec:
  type: NodePort
  selector: {{app: loc}}
  externalTrafficPolicy: Local
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: etp-web}}
spec:
  type: NodePort
  selector: {{app: web}}
  externalTrafficPolicy: Local
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: loc, labels: {{app: loc}}}}
spec:
  nodeName: n1
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: c1, labels: {{app: client}}}}
spec:
  nodeName: n1
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: c2, labels: {{app: client}}}}
spec:
  nodeName: n2
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
"""


@pytest.fixture(scope="module")
def lab(lab_home):
    lab = Lab("s" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack")
        flags = lab.dir / "flags"
        flags.mkdir()
        lab.flags = flags  # type: ignore[attr-defined]
        lab.podnet("apply", "-f", "-", input=workloads(flags))
        lab.wait_pods(7)
        # the EndpointSlice controller and the agents follow the pods' readiness
        until_chosen(lab, svc_ips(lab, "web")[0], web_names(lab), all_of=True)
        yield lab
    finally:
        lab.down()


# ---- helpers ------------------------------------------------------------------------------
def svc_ips(lab: Lab, name: str) -> list[str]:
    s = lab.store()
    try:
        return list(s.get("Service", "default", name).spec["clusterIPs"])
    finally:
        s.close()


def _node_port(lab: Lab, name: str) -> int:
    s = lab.store()
    try:
        return int(s.get("Service", "default", name).spec["ports"][0]["nodePort"])
    finally:
        s.close()


def pod(lab: Lab, name: str):
    return next(p for p in lab.pods() if p.name == name)


def web_names(lab: Lab, ready_only: bool = True) -> set[str]:
    return {f"default/{p.name}" for p in lab.pods() if p.labels.get("app") == "web"
            and (p.ready or not ready_only)}


def connect(ip: str, port: int, proto: str = "TCP", timeout: float = 1.0) -> str:
    """One connection (or datagram); the answering pod's `ns/name`, or `ERROR: ...`."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
    try:
        with socket.socket(fam, kind) as s:
            s.settimeout(timeout)
            s.connect((ip, port))
            s.send(b"probe\n")
            data = s.recv(4096)
    except OSError as e:
        return f"ERROR: {type(e).__name__} {e}"
    return data.decode().split(" ")[0]


def answer_line(netns: str, ip: str, port: int, timeout: float = 1.0) -> str:
    """The whole answer of one TCP connection: `ns/name <client address the pod saw>`."""
    return answer_lines(netns, ip, port, 1, timeout)[0]


def answer_lines(netns: str, ip: str, port: int, n: int, timeout: float = 1.0) -> list[str]:
    def one() -> str:
        try:
            with socket.create_connection((ip, port), timeout=timeout) as s:
                s.send(b"probe\n")
                return s.recv(4096).decode().strip()
        except OSError as e:
            return f"ERROR: {type(e).__name__} {e}"
    return call_in_netns(netns, lambda: [one() for _ in range(n)])


def connect_many(netns: str, ip: str, port: int, n: int, proto: str = "TCP",
                 timeout: float = 1.0) -> list[str]:
    return call_in_netns(netns, lambda: [connect(ip, port, proto, timeout) for _ in range(n)])


def netns_of(lab: Lab, name: str) -> str:
    return pod(lab, name).annotations[NETNS_ANNOTATION]


def until_chosen(lab: Lab, vip: str, want: set[str], timeout: float = 10.0,
                 all_of: bool = False) -> None:
    """Until 30 connections from c1 land only in `want` (and on each of them, with
    `all_of`): the proxy caught up."""
    ns = netns_of(lab, "c1")
    deadline = time.monotonic() + timeout
    while True:
        got = set(connect_many(ns, vip, 80, 30, timeout=0.5))
        if got == want or (got <= want and not all_of):
            return
        assert time.monotonic() < deadline, f"still {got - want}"
        time.sleep(0.1)


def until_gone(lab: Lab, vip: str, gone: str, limit: float = 2.0) -> float:
    """Seconds until connections from c1 and c2 stop reaching `gone` (or fail); asserts
    that 60 connections after `limit` seconds never reach it."""
    t0 = time.monotonic()
    c1, c2 = netns_of(lab, "c1"), netns_of(lab, "c2")
    took = None
    while time.monotonic() - t0 < limit + 3:
        got = connect_many(c1, vip, 80, 10, timeout=0.3) + connect_many(c2, vip, 80, 10, timeout=0.3)
        if all(g != gone and not g.startswith("ERROR") for g in got):
            took = time.monotonic() - t0
            break
    assert took is not None, f"{gone} still chosen after {limit + 3:.0f}s"
    time.sleep(max(0.0, limit - (time.monotonic() - t0)))
    got = connect_many(c1, vip, 80, 30) + connect_many(c2, vip, 80, 30)
    assert gone not in got and not any(g.startswith("ERROR") for g in got), Counter(got)
    return took


# ---- the tests ----------------------------------------------------------------------------
def test_vip_from_pods_on_every_node_reaches_all_three_uniformly(lab):
    vip4, vip6 = svc_ips(lab, "web")
    assert ":" not in vip4 and ":" in vip6
    web = web_names(lab)
    assert len(web) == 3
    got: list[str] = []
    for client in ("c1", "c2"):
        mine = connect_many(netns_of(lab, client), vip4, 80, 75)
        assert set(mine) == web, (client, Counter(mine))  # from each node, every endpoint
        got += mine
    counts = Counter(got)
    assert set(counts) == web, counts
    expected = len(got) / 3
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    print(f"counts {dict(counts)}, chi2 {chi2:.2f}")
    assert chi2 < CHI2_DF2_P001, f"not uniform: {counts} (chi2 {chi2:.1f})"


def test_ipv6_vip_reaches_all_three(lab):
    _, vip6 = svc_ips(lab, "web")
    got = connect_many(netns_of(lab, "c1"), vip6, 80, 30) + connect_many(netns_of(lab, "c2"), vip6, 80, 30)
    assert set(got) == web_names(lab), Counter(got)


def test_udp_service_answers_from_every_endpoint(lab):
    vip4, vip6 = svc_ips(lab, "web")
    for vip in (vip4, vip6):
        # a fresh socket per datagram: a new flow, so a new choice
        got = connect_many(netns_of(lab, "c2"), vip, 53, 45, proto="UDP")
        assert set(got) == web_names(lab), Counter(got)


def test_client_ip_affinity_sticks(lab):
    [vip] = svc_ips(lab, "sticky")
    for client in ("c1", "c2"):
        got = connect_many(netns_of(lab, client), vip, 80, 20)
        assert len(set(got)) == 1 and got[0] in web_names(lab), Counter(got)


def test_no_endpoints_is_refused_at_once(lab):
    [vip] = svc_ips(lab, "empty")

    def attempt() -> tuple[float, str, str]:
        t = time.monotonic()
        tcp = connect(vip, 80, timeout=3.0)
        took = time.monotonic() - t
        return took, tcp, connect(vip, 53, "UDP", timeout=3.0)
    took, tcp, udp = call_in_netns(netns_of(lab, "c1"), attempt)
    assert tcp.startswith("ERROR: ConnectionRefusedError"), tcp
    assert took < 0.5, f"refusal took {took:.2f}s"
    assert udp.startswith("ERROR: ConnectionRefusedError"), udp  # ICMP port unreachable


def test_hairpin_a_pod_reaches_itself_through_its_service(lab):
    [vip] = svc_ips(lab, "hair")
    got = connect_many(netns_of(lab, "hairpin"), vip, 80, 5)
    assert got == ["default/hairpin"] * 5


def test_nodeport_from_the_outside_world_to_each_node(lab):
    node_port = _node_port(lab, "web-np")
    out = f"pn-{lab.name}-out"
    for node_ip in ("198.18.0.11", "198.18.0.12", "fd00:198:18::11", "fd00:198:18::12"):
        got = connect_many(out, node_ip, node_port, 15)
        assert set(got) <= web_names(lab) and len(set(got)) >= 2, (node_ip, Counter(got))


def test_nodeport_from_pods_to_their_own_and_the_other_node(lab):
    node_port = _node_port(lab, "web-np")
    for client in ("c1", "c2"):
        for node_ip in ("198.18.0.11", "198.18.0.12", "fd00:198:18::11", "fd00:198:18::12"):
            got = connect_many(netns_of(lab, client), node_ip, node_port, 10)
            assert set(got) <= web_names(lab) and len(set(got)) >= 2, (client, node_ip, Counter(got))


def test_internal_traffic_policy_local_reaches_the_local_endpoint_and_drops_elsewhere(lab):
    [vip] = svc_ips(lab, "itp-local")
    got = connect_many(netns_of(lab, "c1"), vip, 80, 10)  # c1 and loc are on n1
    assert got == ["default/loc"] * 10, Counter(got)
    # c2 is on n2, which has no endpoint: dropped (a timeout), never refused
    t = time.monotonic()
    got = connect_many(netns_of(lab, "c2"), vip, 80, 2, timeout=1.0)
    assert all(g.startswith("ERROR: TimeoutError") for g in got), got
    assert time.monotonic() - t >= 1.9


def test_external_traffic_policy_local_nodeport_keeps_the_client_address(lab):
    node_port = _node_port(lab, "etp-local")
    out = f"pn-{lab.name}-out"
    route = subprocess.run(["ip", "-n", out, "-o", "route", "get", "198.18.0.11"], capture_output=True,
                           text=True, check=True).stdout.split()
    client = route[route.index("src") + 1]
    for _ in range(5):
        assert answer_line(out, "198.18.0.11", node_port) == f"default/loc {client}"  # not masqueraded
    got = connect_many(out, "198.18.0.12", node_port, 2, timeout=1.0)  # n2: no local endpoint
    assert all(g.startswith("ERROR: TimeoutError") for g in got), got
    # its ClusterIP is not restricted: the pod on n2 reaches the endpoint on n1
    [vip] = svc_ips(lab, "etp-local")
    assert connect_many(netns_of(lab, "c2"), vip, 80, 3) == ["default/loc"] * 3


def test_external_traffic_policy_local_holds_only_clients_from_outside(lab):
    """kube-proxy: a pod's and the node's own connection to an eTP-Local NodePort reach
    every endpoint (the pod's address kept); the outside world's only the node's own."""
    node_port = _node_port(lab, "etp-web")
    on = {n: {f"default/{p.name}" for p in lab.pods() if p.labels.get("app") == "web" and p.node_name == n}
          for n in ("n1", "n2")}
    assert on["n1"] and on["n2"], on  # the lab's scheduler spreads the 3 replicas
    c1 = pod(lab, "c1")
    got = answer_lines(netns_of(lab, "c1"), "198.18.0.11", node_port, 40)
    assert {g.split()[0] for g in got} == on["n1"] | on["n2"], Counter(got)
    assert {g.split()[1] for g in got} == {c1.pod_ips[0]}
    node = set(connect_many(f"pn-{lab.name}-n1", "198.18.0.11", node_port, 40))
    assert node == on["n1"] | on["n2"], node
    outside = set(connect_many(f"pn-{lab.name}-out", "198.18.0.11", node_port, 20))
    assert outside == on["n1"], outside


def test_a_clusterip_reached_from_the_outside_world_is_masqueraded(lab):
    """A ClusterIP is not meant for the outside world, but a router may send it there:
    kube-proxy masquerades a source outside the pod CIDRs, so an endpoint on the other
    node answers back through n1 instead of straight to a client that never asked it."""
    vip = svc_ips(lab, "web")[0]
    rt, out = f"pn-{lab.name}-rt", f"pn-{lab.name}-out"
    routes = [(rt, ["10.96.0.0/12", "via", "198.18.0.11"]),
              (out, ["10.96.0.0/12", "via", "203.0.113.1"])]
    for ns, r in routes:
        subprocess.run(["ip", "-n", ns, "route", "add", *r], check=True)
    try:
        got = answer_lines(out, vip, 80, 30)
    finally:
        for ns, r in routes:
            subprocess.run(["ip", "-n", ns, "route", "del", r[0]], check=True)
    assert {g.split()[0] for g in got} == web_names(lab), Counter(got)
    assert {g.split()[1] for g in got} == {"198.18.0.11"}  # n1's address, not the client's


def test_nodes_themselves_reach_cluster_ips(lab):
    vip4, vip6 = svc_ips(lab, "web")
    for node in ("n1", "n2"):
        for vip in (vip4, vip6):
            got = connect_many(f"pn-{lab.name}-{node}", vip, 80, 15)
            assert set(got) <= web_names(lab) and len(set(got)) >= 2, (node, vip, Counter(got))


def test_sctp_service_rules_and_traffic_where_the_kernel_has_sctp(lab):
    [vip] = svc_ips(lab, "sctp")
    for node in ("n1", "n2"):
        table = subprocess.run(["ip", "netns", "exec", f"pn-{lab.name}-{node}", "nft", "list", "table",
                                "inet", "podnet-svc"], capture_output=True, text=True, check=True).stdout
        assert "sctp" in table and vip in table, f"{node}: no SCTP rule for {vip}"
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132).close()
    except OSError as e:
        pytest.skip(f"this kernel has no SCTP: {e}")
    got = call_in_netns(netns_of(lab, "c1"), lambda: _sctp(vip))
    assert got in web_names(lab)


def _sctp(vip: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132) as s:
        s.settimeout(2)
        s.connect((vip, 9000))
        s.send(b"probe\n")
        return s.recv(4096).decode().split(" ")[0]


def test_an_unready_pod_leaves_the_choice_within_two_seconds(lab):
    vip4, _ = svc_ips(lab, "web")
    victim = sorted(web_names(lab))[0]
    flag = lab.flags / f"unready-{victim.split('/')[1]}"  # type: ignore[attr-defined]
    flag.touch()
    try:
        took = until_gone(lab, vip4, victim)
        print(f"unready pod left the choice after {took:.2f}s")
        assert took < 2.0, f"unready pod chosen for {took:.2f}s"
        assert victim not in web_names(lab)  # the pod reports Ready=False
    finally:
        flag.unlink()
    until_chosen(lab, vip4, web_names(lab, ready_only=False))
    lab.wait_pods(3, app="web")


def test_a_deleted_pod_leaves_the_choice_within_two_seconds(lab):
    vip4, _ = svc_ips(lab, "web")
    victim = sorted(web_names(lab))[-1]
    lab.podnet("delete", "pod", victim.split("/")[1])
    took = until_gone(lab, vip4, victim)
    print(f"deleted pod left the choice after {took:.2f}s")
    assert took < 2.0, f"deleted pod chosen for {took:.2f}s"
    lab.wait_pods(3, app="web")  # the Deployment's replacement


def test_a_service_losing_its_last_endpoint_refuses_then_its_deletion_clears_the_rules(lab):
    [vip] = svc_ips(lab, "hair")
    lab.podnet("delete", "pod", "hairpin")
    c1 = netns_of(lab, "c1")
    deadline = time.monotonic() + 3
    while not (got := connect_many(c1, vip, 80, 1, timeout=0.5)[0]).startswith("ERROR: ConnectionRefused"):
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    lab.podnet("delete", "service", "hair")
    deadline = time.monotonic() + 3
    while True:
        tables = [subprocess.run(["ip", "netns", "exec", f"pn-{lab.name}-{n}", "nft", "list", "table", "inet",
                                  "podnet-svc"], capture_output=True, text=True, check=True).stdout
                  for n in ("n1", "n2")]
        if not any(vip in t for t in tables):
            break
        assert time.monotonic() < deadline, f"{vip} still in the nodes' tables"
        time.sleep(0.1)


def test_nodes_report_their_agents_sync_counts(lab):
    """Published with the Node's heartbeat (every 10 s): wait for one after the changes."""
    deadline = time.monotonic() + 15
    while True:
        s = lab.store()
        try:
            nodes = {n.name: n.status["agent"]["sync"] for n in s.list("Node").items}
        finally:
            s.close()
        if all(sync["roles"]["services"]["partial"] >= 1 for sync in nodes.values()) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(nodes) == {"n1", "n2"}
    for name, sync in nodes.items():
        svc = sync["roles"]["services"]
        assert sync["full"] >= 1 and svc["full"] >= 1 and svc["partial"] >= 1, (name, sync)
        assert sync["lastSeconds"] > 0 and sync["failed"] == 0
    lines = lab.podnet("get", "nodes", "-o", "wide").stdout.splitlines()
    assert lines[0].split()[-1] == "SYNCS"
    for name in nodes:
        row = next(line.split() for line in lines if line.startswith(name + " "))
        assert row[-1].split("f+")[0].isdigit() and int(row[-1].split("f+")[0]) >= 1, row
