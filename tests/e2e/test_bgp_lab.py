"""BGP routing with BIRD in the lab (issue 21 §1): one lab for the module, `--routing bgp`,
three nodes, dual stack. The agents install no static pod route; every route between
nodes, and the router's to the pods, is one BIRD learned. The tests run in order: the
last one turns the mesh off for route reflection.
"""
from __future__ import annotations

import copy
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from lablib import Lab, all_pairs, manifests, probe_from
from needs import missing
from netnames import unique_netns
from podnet.api.defaults import ROUTE_PROTO
from podnet.api.objects import from_dict
from podnet.apiserver.write import Writer
from podnet.dataplane.bird.daemon import BIRD_BIN, available

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 9090
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def lab(lab_home: Path) -> Iterator[Lab]:
    why = available()
    if why:
        missing(why)
    lab = Lab("bgp" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "3", "--dual-stack", "--routing", "bgp")
        yield lab
    finally:
        lab.down()


def bird_dsts(netns: str, family: int = 4) -> set[str]:
    return {r["dst"] for r in routes_in(netns, family) if r.get("protocol") == "bird"}


def routes_in(netns: str, family: int = 4) -> list[dict]:
    cp = subprocess.run(["ip", "-n", netns, "-j", f"-{family}", "route", "show"], capture_output=True,
                        text=True, check=True)
    return json.loads(cp.stdout) if cp.stdout.strip() else []


def wait_for(what: str, cond, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


def blocks_of(lab: Lab, node: str) -> set[str]:
    s = lab.store()
    try:
        return {str(b.spec["cidr"]) for b in s.list("IPAMBlock").items
                if b.spec.get("affinity") == f"host:{node}"}
    finally:
        s.close()


def test_every_pod_reaches_every_pod_over_bird_routes_only(lab: Lab):
    lab.podnet("apply", "-f", "-", input=manifests(0, 2, PORT, pinned={1: "n1", 2: "n2"}))
    pods = lab.wait_pods(2)
    wait_for("n1 learns n2's blocks", lambda: blocks_of(lab, "n2") <=
             bird_dsts(f"pn-{lab.name}-n1") | bird_dsts(f"pn-{lab.name}-n1", 6))
    failures = all_pairs(pods, PORT)
    assert not failures, "\n".join(failures[:20])
    for n in NODES:
        ns = f"pn-{lab.name}-{n}"
        for fam in (4, 6):
            # no route of the agent's own protocol: the pod routes between nodes are BIRD's
            assert not [r for r in routes_in(ns, fam) if r.get("protocol") == str(ROUTE_PROTO)], (n, fam)
    status = lab.podnet("node", "status", "--lab", lab.name).stdout
    assert status.count("Established") == 3 * (2 * 2 + 2), status  # mesh + router, per family


def test_new_block_at_the_router_within_5s_and_outside_reaches_an_unnated_pod(lab: Lab):
    """A pool that is not NATed: the outside world reaches its pod by the pod's own
    address (the router learned the block over BGP) and the pod reaches the outside
    with it (no masquerade)."""
    pool = """apiVersion: podnet.io/v1
kind: IPPool
metadata: {name: public}
spec: {cidr: 10.245.0.0/24, blockSize: 28, natOutgoing: false}
---
apiVersion: v1
kind: Pod
metadata:
  name: pub
  annotations: {podnet.io/ipAddrs: '["10.245.0.5"]'}
spec:
  nodeName: n3
  containers:
  - {name: srv, image: podnet/serve, ports: [{containerPort: 9090}]}
"""
    assert "10.245.0.0/28" not in blocks_of(lab, "n3")
    lab.podnet("apply", "-f", "-", input=pool)
    wait_for("n3 claims 10.245.0.0/28", lambda: "10.245.0.0/28" in blocks_of(lab, "n3"), every=0.02)
    t0 = time.monotonic()
    rt = f"pn-{lab.name}-rt"
    wait_for("the router learns n3's new block", lambda: "10.245.0.0/28" in bird_dsts(rt), timeout=5.0,
             every=0.05)
    learned = time.monotonic() - t0
    via = [r for r in routes_in(rt) if r["dst"] == "10.245.0.0/28"][0]
    assert via["gateway"] == "198.18.0.13", via
    lab.wait_pods(3)
    out = f"pn-{lab.name}-out"
    [(_, ans)] = probe_from(out, [("10.245.0.5", PORT, "TCP")])
    assert ans == "default/pub 203.0.113.10", ans  # the pod saw the outside's own address
    pub = next(p for p in lab.pods() if p.name == "pub")
    [(_, ans)] = probe_from(pub.annotations["podnet.io/netns"], [("203.0.113.10", 80, "TCP")])
    assert ans.endswith(" 10.245.0.5"), ans  # the outside saw the pod's address: not NATed
    # trace predicts it (the reply through the router's BGP route to n3) and the kernel agrees
    tr = lab.podnet("trace", "pub", "203.0.113.10:80", "--lab", lab.name, check=False)
    assert tr.returncode == 0, tr.stdout + tr.stderr
    assert "via 198.18.0.13 dev eth0 proto bird metric 32  [learned over BGP: announced by n3]" in tr.stdout
    assert learned < 5.0


def _hostile_conf(nodes: list[str]) -> str:
    sessions = "".join(f"""protocol bgp h{i} {{
    local 198.18.0.66 as 65066;
    neighbor {ip} as 64512;
    direct;
    connect retry time 2;
    ipv4 {{ import none; export all; }};
}}
""" for i, ip in enumerate(nodes))
    return f"""router id 198.18.0.66;
protocol device {{}}
protocol static {{
    ipv4;
    route 0.0.0.0/0 blackhole;
    route 8.8.8.0/24 blackhole;
    route 10.244.200.0/26 blackhole;
    route 10.96.0.0/12 blackhole;
}}
{sessions}"""


def test_a_hostile_peers_routes_are_refused(lab: Lab, tmp_path: Path):
    """A peer on the underlay announces a default route, someone else's network, a
    block inside the pod pool and the service range: the nodes keep their sessions with
    it and install none of it."""
    ns = unique_netns("bgph")
    port = "h" + secrets.token_hex(3)
    ul = f"pn-{lab.name}-ul"
    proc = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        for argv in (["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", ul],
                     ["ip", "-n", ul, "link", "set", port, "master", "br0", "up"],
                     ["ip", "-n", ns, "addr", "add", "198.18.0.66/24", "dev", "eth0"],
                     ["ip", "-n", ns, "link", "set", "eth0", "up"], ["ip", "-n", ns, "link", "set", "lo", "up"]):
            subprocess.run(argv, check=True)
        conf = tmp_path / "hostile.conf"
        conf.write_text(_hostile_conf(["198.18.0.11", "198.18.0.12", "198.18.0.13"]))
        proc = subprocess.Popen(["ip", "netns", "exec", ns, BIRD_BIN, "-f", "-c", str(conf),
                                 "-s", str(tmp_path / "h.ctl")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        lab.podnet("apply", "-f", "-", input="apiVersion: podnet.io/v1\nkind: BGPPeer\n"
                   "metadata: {name: hostile}\nspec: {peerIP: 198.18.0.66, asNumber: 65066}\n")

        def hostile_sessions() -> list[list[str]]:
            out = lab.podnet("node", "status", "--lab", lab.name).stdout.splitlines()
            rows = [line.split() for line in out if " 198.18.0.66 " in line]
            return rows if len(rows) == 3 and all("Established" in r and int(r[-1]) >= 4 for r in rows) else []
        rows = wait_for("every node's session with the hostile peer, its 4 routes filtered", hostile_sessions)
        assert all(r[-2] == "0" for r in rows), rows  # nothing imported
        for n in NODES:
            dsts = {r["dst"] for r in routes_in(f"pn-{lab.name}-{n}")}
            assert not dsts & {"8.8.8.0/24", "10.244.200.0/26", "10.96.0.0/12"}, (n, dsts)
            default = [r for r in routes_in(f"pn-{lab.name}-{n}") if r["dst"] == "default"]
            assert [r["gateway"] for r in default] == ["198.18.0.1"], default
    finally:
        lab.podnet("delete", "bgppeer", "hostile", check=False)
        if proc is not None:
            proc.terminate()
            proc.wait(5)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_advertised_cluster_ips_reach_the_service_from_outside(lab: Lab):
    """Calico's Service IP advertisement: every node announces serviceClusterIPs (the
    router spreads over them, ECMP); an externalTrafficPolicy Local Service's ClusterIP is
    also announced as a /32 by the node with its endpoint only."""
    lab.podnet("apply", "-f", "-", input="""apiVersion: podnet.io/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceClusterIPs: [{cidr: 10.96.0.0/12}]
---
apiVersion: v1
kind: Pod
metadata: {name: local-ep, labels: {app: local}}
spec:
  nodeName: n2
  containers:
  - {name: srv, image: podnet/serve, ports: [{containerPort: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: local}
  ports: [{port: 80, targetPort: 9090}]
""")
    lab.wait_pods(4)
    s = lab.store()
    try:
        vip = str(s.get("Service", "default", "local").spec["clusterIP"])
    finally:
        s.close()
    rt = f"pn-{lab.name}-rt"

    def learned() -> dict[str, list[str]]:
        out = {}
        for r in routes_in(rt):
            if r.get("protocol") == "bird" and r["dst"] in ("10.96.0.0/12", vip):
                out[r["dst"]] = sorted([h["gateway"] for h in r.get("nexthops") or []] or [r["gateway"]])
        return out
    want = {"10.96.0.0/12": ["198.18.0.11", "198.18.0.12", "198.18.0.13"], vip: ["198.18.0.12"]}
    wait_for("the router learns the service range from every node, the Local VIP from n2",
             lambda: learned() == want)
    answers = {ans for _ in range(4) for (_, ans) in probe_from(f"pn-{lab.name}-out", [(vip, 80, "TCP")])}
    assert {a.split()[0] for a in answers} == {"default/local-ep"}, answers


def test_route_reflector_with_the_mesh_off(lab: Lab):
    """n1 reflects; n2 and n3 peer with n1 only, and still learn each other's blocks
    (next hop: the owner, not the reflector)."""
    s = lab.store()
    try:
        def make_rr(cur):
            raw = copy.deepcopy(cur.raw)
            raw["metadata"].setdefault("labels", {})["route-reflector"] = "true"
            raw.setdefault("spec", {})["bgp"] = {"routeReflectorClusterID": "224.0.0.1"}
            return from_dict(raw)
        Writer(s).mutate("Node", "", "n1", make_rr)
    finally:
        s.close()
    lab.podnet("apply", "-f", "-", input="""apiVersion: podnet.io/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: podnet.io/v1
kind: BGPPeer
metadata: {name: to-reflector}
spec: {peerSelector: "route-reflector == 'true'"}
""")

    def sessions() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for line in lab.podnet("node", "status", "--lab", lab.name).stdout.splitlines()[1:]:
            f = line.split()
            if "Established" in f and f[1] not in ("198.18.0.1", "fd00:198:18::1"):
                out.setdefault(f[0], set()).add(f[1])
        return out
    want = {"n1": {"198.18.0.12", "198.18.0.13", "fd00:198:18::12", "fd00:198:18::13"},
            "n2": {"198.18.0.11", "fd00:198:18::11"}, "n3": {"198.18.0.11", "fd00:198:18::11"}}
    wait_for("sessions with the reflector only", lambda: sessions() == want)
    n3_blocks = blocks_of(lab, "n3")
    n2 = f"pn-{lab.name}-n2"
    got = wait_for("n2 learns n3's blocks through n1", lambda: [
        r for fam in (4, 6) for r in routes_in(n2, fam) if r["dst"] in n3_blocks and r.get("protocol") == "bird"])
    assert {r["gateway"] for r in got} <= {"198.18.0.13", "fd00:198:18::13"}, got
    pods = [p for p in lab.wait_pods(4) if p.name != "local-ep"]
    failures = all_pairs(pods, PORT, protos=("TCP",))
    assert not failures, "\n".join(failures[:20])


def test_a_node_gone_silent_is_withdrawn_after_the_hold_time(lab: Lab):
    """n3's link goes down without a word to its peers (no FIN, no NOTIFICATION: as a node
    that lost power): the router drops n3's blocks when the hold timer (9 s) expires."""
    rt = f"pn-{lab.name}-rt"
    n3_blocks = blocks_of(lab, "n3")
    assert n3_blocks & bird_dsts(rt)
    subprocess.run(["ip", "-n", f"pn-{lab.name}-n3", "link", "set", "eth0", "down"], check=True)
    t0 = time.monotonic()
    wait_for("the router withdraws n3's blocks", lambda: not (n3_blocks & (bird_dsts(rt) | bird_dsts(rt, 6))),
             timeout=20.0, every=0.2)
    assert time.monotonic() - t0 > 3.0  # the hold timer, not a closed session, ended it
