"""Racks (issue 21 §2): a lab of two L2 segments routed by the lab router, four nodes
(n1, n3 in rack a: 198.18.0.0/24; n2, n4 in rack b: 198.18.1.0/24), dual stack. Three labs,
one per class fixture: `--encap crosssubnet` (VXLAN only between racks, the agents route),
`--routing bgp` with vxlanMode Never (no encapsulation; BIRD routes, the router is every
rack's ToR), and both (CrossSubnet pools the agents route, a Never pool BIRD routes; there
`podnet trace` across and within racks must agree with real packets, issue 21 §3). What
crosses the underlay is counted on the wire: nftables counters on the underlay's bridges
(the lab's own namespace), per kind of frame.
"""
from __future__ import annotations

import copy
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from lablib import Lab, all_pairs, manifests
from needs import missing
from podnet.api.defaults import ROUTE_PROTO
from podnet.api.objects import from_dict
from podnet.apiserver.write import Writer
from podnet.dataplane.bird.conf import GR_TIME
from podnet.dataplane.bird.daemon import available
from podnet.lab import procs
from podnet.lab.state import LabState
from podnet.lab.topology import spec_from_dict
from podnet.lab.up import agent_argv, component_url

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 9090
PINNED = {1: "n1", 2: "n2", 3: "n3", 4: "n4"}  # p<i> on n<i>: n1, n3 rack a; n2, n4 rack b
WIRE = """table bridge pnwire {
    counter wrapped { }
    counter plain4 { }
    counter plain6 { }
    chain bridged {
        type filter hook forward priority 0; policy accept;
        udp dport 4789 counter name wrapped
        ip daddr 10.244.0.0/16 counter name plain4
        ip6 daddr fd00:10:244::/56 counter name plain6
    }
}
"""


def _lab(lab_home: Path, prefix: str, *args: str) -> Iterator[Lab]:
    lab = Lab(prefix + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "4", "--racks", "2", "--dual-stack", *args)
        lab.podnet("apply", "-f", "-", input=manifests(0, 4, PORT, pinned=PINNED))
        subprocess.run(["ip", "netns", "exec", f"pn-{lab.name}-ul", "nft", "-f", "-"], input=WIRE,
                       text=True, check=True)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="class")
def xs(lab_home: Path) -> Iterator[Lab]:
    yield from _lab(lab_home, "racksx", "--encap", "crosssubnet")


@pytest.fixture(scope="class")
def bgp(lab_home: Path) -> Iterator[Lab]:
    why = available()
    if why:
        missing(why)
    yield from _lab(lab_home, "racksb", "--routing", "bgp")


def counters(lab: Lab) -> dict[str, int]:
    cp = subprocess.run(["ip", "netns", "exec", f"pn-{lab.name}-ul", "nft", "-j", "list", "counters",
                         "table", "bridge", "pnwire"], capture_output=True, text=True, check=True)
    return {o["counter"]["name"]: o["counter"]["packets"] for o in json.loads(cp.stdout)["nftables"]
            if "counter" in o}


def ping(lab: Lab, src: str, dst_ip: str, size: int = 56, count: int = 5) -> subprocess.CompletedProcess:
    return lab.podnet("exec", src, "--", "ping", "-M", "do", "-c", str(count), "-i", "0.05", "-W", "1",
                      "-s", str(size), dst_ip, check=False)


def ips(lab: Lab) -> dict[str, dict[int, str]]:
    return {p.name: {(6 if ":" in ip else 4): ip for ip in p.pod_ips} for p in lab.wait_pods(4)}


def routes_in(netns: str, family: int) -> list[dict]:
    cp = subprocess.run(["ip", "-n", netns, "-j", f"-{family}", "route", "show"], capture_output=True,
                        text=True, check=True)
    return json.loads(cp.stdout) if cp.stdout.strip() else []


def wait_all_pairs(lab: Lab, timeout: float = 30.0) -> None:
    pods = lab.wait_pods(4)
    deadline = time.monotonic() + timeout
    while True:
        failures = all_pairs(pods, PORT)
        if not failures or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if failures:  # what the nodes had, to tell a planning error from a kernel one
        state = {n: subprocess.run(["sh", "-c", f"ip -n pn-{lab.name}-{n} route; ip -n pn-{lab.name}-{n} neigh; "
                                   f"bridge -n pn-{lab.name}-{n} fdb show dev pnvx"],
                                   capture_output=True, text=True).stdout for n in ("n1", "n2", "n3", "n4")}
        pytest.fail("\n".join(failures[:20]) + "\n" + "\n".join(f"{n}:\n{t}" for n, t in state.items()))


def wire_delta(lab: Lab, src: str, dst: str, family: int) -> dict[str, int]:
    """What 5 pings from pod `src` to pod `dst` (and their answers) put on the underlay."""
    before = counters(lab)
    cp = ping(lab, src, ips(lab)[dst][family])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    after = counters(lab)
    return {k: after[k] - before[k] for k in after}


def bird_dsts(netns: str) -> set[str]:
    return {r["dst"] for fam in (4, 6) for r in routes_in(netns, fam) if r.get("protocol") == "bird"}


def blocks_of(lab: Lab, node: str) -> set[str]:
    s = lab.store()
    try:
        return {str(b.spec["cidr"]) for b in s.list("IPAMBlock").items if b.spec.get("affinity") == f"host:{node}"}
    finally:
        s.close()


def kill_agent(lab: Lab, node: str) -> None:
    """The node's agent dies (SIGKILL, as a crash or an OOM kill would end it); its BIRD
    goes with it (the parent-death signal), sending no Cease."""
    state = LabState(lab.dir)
    pid = state.pids()[f"agent-{node}"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while procs.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not procs.alive(pid)


def start_agent(lab: Lab, node: str) -> None:
    state = LabState(lab.dir)
    meta = state.read_meta()
    spec = spec_from_dict(meta["spec"])
    procs.spawn(state, f"agent-{node}", agent_argv(spec, node, component_url(meta, f"agent-{node}"), state),
                netns=spec.node(node).netns, env={"PODNET_HOME": str(lab.home)})


def _holds(cidr: str, ip: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def _within(dst: str, pool: str) -> bool:
    net, p = ipaddress.ip_network(dst), ipaddress.ip_network(pool)
    return net.version == p.version and net.subnet_of(p)


def trace(lab: Lab, src: str, dst: str, *args: str, timeout: float = 30.0) -> dict:
    """The trace, once prediction and kernel agree (routes settle: BIRD's sessions come up
    and the agents publish their subnets within seconds of the pods); the last one's
    mismatches otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        cp = lab.podnet("trace", "--lab", lab.name, src, dst, *args, "-o", "json", check=False)
        assert cp.returncode in (0, 3), cp.stdout + cp.stderr
        t = json.loads(cp.stdout)
        bad = [c["line"] for c in t["confirmation"]["checks"] if not c["ok"]]
        if t["confirmation"]["ok"] and not bad:
            return t
        if time.monotonic() > deadline:
            routes = subprocess.run(["ip", "-n", f"pn-{lab.name}-n1", "route"], capture_output=True, text=True).stdout
            pytest.fail("\n".join(bad) + f"\nn1's routes:\n{routes}")
        time.sleep(1.0)


def hops(t: dict, direction: str = "request") -> list[dict]:
    return t[direction]["hops"]


def checked(t: dict, where: str, what: str) -> list[dict]:
    return [c for c in t["confirmation"]["checks"] if c["where"] == where and c["what"].startswith(what)]


class TestCrossSubnet:
    """--encap crosssubnet: the agents route, VXLAN between racks only."""

    def test_crosssubnet_every_pod_reaches_every_pod(self, xs: Lab):
        wait_all_pairs(xs)
        n1 = f"pn-{xs.name}-n1"
        for fam in (4, 6):
            ours = {r["dst"]: r.get("dev") for r in routes_in(n1, fam) if r.get("protocol") == str(ROUTE_PROTO)}
            blocks = {p.name: ips(xs)[p.name][fam] for p in xs.pods("default")}
            # same rack (n3): straight to the node on the segment; the other rack: VXLAN
            devs = {name: next(dev for dst, dev in ours.items() if _holds(dst, ip))
                    for name, ip in blocks.items() if name != "p1"}
            assert devs == {"p3": "eth0", "p2": "pnvx", "p4": "pnvx"}, (fam, ours)

    @pytest.mark.parametrize("family", [4, 6])
    def test_crosssubnet_encapsulates_only_between_racks_on_the_wire(self, xs: Lab, family: int):
        plain = f"plain{family}"
        same = wire_delta(xs, "p1", "p3", family)
        assert same[plain] >= 10 and same["wrapped"] == 0, same  # 5 requests + 5 answers, bare
        cross = wire_delta(xs, "p1", "p2", family)
        # each request and answer crosses two bridges (to the router, from it), wrapped
        assert cross["wrapped"] >= 20 and cross[plain] == 0, cross

    @pytest.mark.parametrize("family,size", [(4, 1450 - 28), (6, 1450 - 48)])
    def test_a_full_size_df_packet_crosses_racks(self, xs: Lab, family: int, size: int):
        """The pods' MTU is the underlay's (1500) minus VXLAN's 50 bytes (IPv4 outer header):
        a packet of exactly that size, DF set, crosses the racks wrapped; one byte more is
        refused by the pod's own stack, not lost on the way."""
        dst = ips(xs)["p2"][family]
        ok = ping(xs, "p1", dst, size)
        assert ok.returncode == 0 and " 0% packet loss" in ok.stdout, ok.stdout + ok.stderr
        too_big = ping(xs, "p1", dst, size + 1, count=1)
        assert too_big.returncode != 0 and "mtu" in (too_big.stdout + too_big.stderr).lower()


class TestBgpNever:
    """--routing bgp, vxlanMode Never: BIRD routes, nothing is encapsulated."""

    def test_bgp_never_every_pod_reaches_every_pod_across_racks(self, bgp: Lab):
        wait_all_pairs(bgp, timeout=40.0)
        n1 = f"pn-{bgp.name}-n1"
        for fam in (4, 6):
            assert not [r for r in routes_in(n1, fam) if r.get("protocol") == str(ROUTE_PROTO)]
            bird = {r["dst"]: r.get("gateway") for r in routes_in(n1, fam) if r.get("protocol") == "bird"}
            gw = {name: next(g for dst, g in bird.items() if _holds(dst, ip))
                  for name, ip in ((p.name, ips(bgp)[p.name][fam]) for p in bgp.pods("default")) if name != "p1"}
            # same rack: the node itself; the other rack: resolved through the rack's router
            rack_a = "198.18.0." if fam == 4 else "fd00:198:18::"
            assert gw["p3"] == rack_a + "13" and gw["p2"] == gw["p4"] == rack_a + "1", (fam, bird)

    @pytest.mark.parametrize("family,size", [(4, 1500 - 28), (6, 1500 - 48)])
    def test_bgp_never_is_not_encapsulated_and_full_size_crosses(self, bgp: Lab, family: int, size: int):
        cross = wire_delta(bgp, "p1", "p2", family)
        assert cross[f"plain{family}"] >= 20 and cross["wrapped"] == 0, cross
        ok = ping(bgp, "p1", ips(bgp)["p2"][family], size)
        assert ok.returncode == 0 and " 0% packet loss" in ok.stdout, ok.stdout + ok.stderr

    def test_an_agent_that_dies_and_restarts_keeps_forwarding(self, bgp: Lab):
        """Graceful restart: n2's agent is killed and started again. Its BIRD died with it
        without a Cease, so n1 and the router keep n2's routes (stale) meanwhile, n2's kernel
        keeps BIRD's routes, and the new agent's BIRD recovers them (`bird -R`): a pod in the
        other rack is pinged throughout without a loss."""
        n1, rt = f"pn-{bgp.name}-n1", f"pn-{bgp.name}-rt"
        n2_blocks = blocks_of(bgp, "n2")
        assert n2_blocks <= bird_dsts(n1) and n2_blocks <= bird_dsts(rt)
        pinger = subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "exec", "p1", "--", "ping", "-c", "150",
                                   "-i", "0.1", "-W", "1", ips(bgp)["p2"][4]], env=bgp.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.0)
            kill_agent(bgp, "n2")
            missing_at: list[str] = []
            t0 = time.monotonic()

            def check(when: str) -> None:
                for name, ns in (("n1", n1), ("the router", rt)):
                    if not n2_blocks <= bird_dsts(ns):
                        missing_at.append(f"{name} at {time.monotonic() - t0:.2f}s {when}: "
                                          f"{sorted(n2_blocks - bird_dsts(ns))}")
            check("with no agent and no BIRD on n2")
            start_agent(bgp, "n2")
            check("while n2's agent started")
            deadline = time.monotonic() + GR_TIME
            while time.monotonic() < deadline and "Established" not in _n2_sessions(bgp):
                time.sleep(0.2)
            check("once n2's BIRD was back")
            assert time.monotonic() - t0 < GR_TIME, "n2's BIRD took longer than the restart time"
            out, _ = pinger.communicate(timeout=30)
        finally:
            if pinger.poll() is None:
                pinger.kill()
        assert not missing_at, (missing_at, out, (bgp.dir / "bird-n2" / "bird.log").read_text()[-3000:])
        assert "150 received, 0% packet loss" in out, out
        assert "Graceful restart" in (bgp.dir / "bird-n2" / "bird.log").read_text()

    def test_a_node_stopped_uncleanly_is_withdrawn_after_the_restart_time(self, bgp: Lab):
        """n4's agent dies and is not started again: its peers keep its routes for the
        graceful restart time (GR_TIME), then withdraw them."""
        rt = f"pn-{bgp.name}-rt"
        n4_blocks = blocks_of(bgp, "n4")
        assert n4_blocks <= bird_dsts(rt)
        kill_agent(bgp, "n4")
        t0 = time.monotonic()
        time.sleep(GR_TIME / 2)
        assert n4_blocks <= bird_dsts(rt), "withdrawn before the restart time"
        while n4_blocks & bird_dsts(rt) and time.monotonic() - t0 < GR_TIME + 10:
            time.sleep(0.2)
        gone = time.monotonic() - t0
        assert not n4_blocks & bird_dsts(rt), f"still routed {gone:.0f}s after n4's BIRD died"
        assert GR_TIME - 1 <= gone <= GR_TIME + 8, gone


def _n2_sessions(lab: Lab) -> str:
    cp = lab.podnet("node", "status", "--lab", lab.name, "--node", "n2", check=False)
    return cp.stdout


# Beside the CrossSubnet pools, a pool BIRD routes (vxlanMode Never), its pods in their own
# namespace (the tests above count the default namespace's): q1 on n1 (rack a), q2 on n2 (b).
ANNOTATION = "annotations: {podnet.io/ipAddrs: '[\"%s\"]'}"
ROUTED = """apiVersion: v1
kind: Namespace
metadata: {name: routed}
---
apiVersion: podnet.io/v1
kind: IPPool
metadata: {name: routed}
spec: {cidr: 10.246.0.0/24, blockSize: 28, natOutgoing: true, vxlanMode: Never}
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: routed
  {ANNOTATION % ip}
spec:
  nodeName: {node}
  containers:
  - {{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}
""" for name, node, ip in (("q1", "n1", "10.246.0.5"), ("q2", "n2", "10.246.0.21")))
CROSSSUBNET_POOLS = ("10.244.0.0/16", "fd00:10:244::/56")


@pytest.fixture(scope="class")
def bgpxs(lab_home: Path) -> Iterator[Lab]:
    why = available()
    if why:
        missing(why)
    for lab in _lab(lab_home, "racksc", "--routing", "bgp", "--encap", "crosssubnet"):
        lab.podnet("apply", "-f", "-", input=ROUTED)
        yield lab


class TestBgpCrossSubnet:
    """--routing bgp with CrossSubnet pools: the agents route the pools (VXLAN between
    racks, direct in a rack) as Calico's Felix routes VXLAN pools, and BIRD, which still
    announces the blocks, installs none of them. A Never pool beside them is BIRD's.
    `podnet trace` across the racks (issue 21 §3), confirmed by real packets, on all three."""

    def test_the_agents_route_encapsulating_pools_and_bird_installs_none(self, bgpxs: Lab):
        wait_all_pairs(bgpxs, timeout=40.0)
        n1 = f"pn-{bgpxs.name}-n1"
        for fam in (4, 6):
            assert not [r for r in routes_in(n1, fam) if r.get("protocol") == "bird"
                        and any(_within(r["dst"], pool) for pool in CROSSSUBNET_POOLS)], fam
            ours = {r["dst"]: r.get("dev") for r in routes_in(n1, fam) if r.get("protocol") == str(ROUTE_PROTO)}
            devs = {p.name: next(dev for dst, dev in ours.items() if _holds(dst, ips(bgpxs)[p.name][fam]))
                    for p in bgpxs.pods("default") if p.name != "p1"}
            assert devs == {"p3": "eth0", "p2": "pnvx", "p4": "pnvx"}, (fam, ours)
        # the router still learns every block over BGP
        assert blocks_of(bgpxs, "n2") <= bird_dsts(f"pn-{bgpxs.name}-rt")
        cross = wire_delta(bgpxs, "p1", "p2", 4)
        assert cross["wrapped"] >= 20 and cross["plain4"] == 0, cross

    @pytest.mark.parametrize("family", [4, 6])
    def test_crosssubnet_across_racks_wrapped_through_the_router(self, bgpxs: Lab, family: int):
        t = trace(bgpxs, "p1", f"p2:{PORT}", *(["-6"] if family == 6 else []))
        assert [h["kind"] for h in hops(t)] == ["pod", "node", "underlay", "router", "underlay", "node", "pod"]
        router = hops(t)[3]
        outer = router["headers"]["outer"]
        assert outer["l3"]["family"] == 4 and outer["l4"]["dport"] == 4789 and outer["l3"]["ttl"] == 63
        assert router["headers"]["l3"]["family"] == family
        # the kernel saw the wrapped packet at the router (marked by the inner port) and routed
        # its outer header as predicted, both ways
        for d in ("request", "reply"):
            seen = checked(t, f"{d} router", "packet seen") + checked(t, f"{d} router", "leaves by") + \
                checked(t, f"{d} router", "ip route get")
            assert len(seen) == 3 and all(c["ok"] for c in seen), seen
        assert hops(t)[5]["iif"] == "pnvx"


    def test_same_rack_bare(self, bgpxs: Lab):
        t = trace(bgpxs, "p1", f"p3:{PORT}")
        assert [h["kind"] for h in hops(t)] == ["pod", "node", "underlay", "node", "pod"]
        assert hops(t)[1]["oif"] == "eth0" and hops(t)[1]["headers"]["outer"] is None


    def test_never_with_bgp_through_the_router_on_birds_routes(self, bgpxs: Lab):
        t = trace(bgpxs, "-n", "routed", "q1", f"q2:{PORT}")
        kinds = [h["kind"] for h in hops(t)]
        assert kinds == ["pod", "node", "underlay", "router", "underlay", "node", "pod"]
        assert all(h["headers"] is None or h["headers"]["outer"] is None for h in hops(t))
        route = next(s for s in hops(t)[1]["steps"] if s["kind"] == "route")
        assert route["data"]["bgp"]["session"] == "pn_mesh_n2_4" and "proto bird" in route["data"]["route"]
        # the kernel's route is BIRD's and BIRD learned it over that session from n2, next hop n2;
        # the router's too (learned from n2)
        for where in ("request node n1", "request router", "reply node n2", "reply router"):
            bgp = checked(t, where, "BIRD's route") + checked(t, where, "kernel route")
            assert len(bgp) == 2 and all(c["ok"] for c in bgp), (where, bgp)


    def test_a_rack_in_an_as_of_its_own_over_ebgp(self, bgpxs: Lab):
        """AS per rack (Calico's Node spec.bgp.asNumber): n2, rack b's only node, moves to AS
        65002. Its sessions come back as eBGP (with n1 and n3, and with the router, which takes
        any AS but its own), and trace, predicting the AS path, agrees with BIRD's routes."""
        def own_as(cur):
            raw = copy.deepcopy(cur.raw)
            raw.setdefault("spec", {})["bgp"] = {"asNumber": 65002}
            return from_dict(raw)
        s = bgpxs.store()
        try:
            Writer(s).mutate("Node", "", "n2", own_as)
        finally:
            s.close()
        t = trace(bgpxs, "-n", "routed", "q1", f"q2:{PORT}")
        route = next(s for s in hops(t)[1]["steps"] if s["kind"] == "route")
        assert route["data"]["bgp"]["as_path"] == "65002", route
        for where in ("request node n1", "request router", "reply node n2", "reply router"):
            bird = checked(t, where, "BIRD's route")
            assert len(bird) == 1 and bird[0]["ok"] and "AS path" in bird[0]["kernel"], (where, bird)
        assert "AS path 64512" in checked(t, "reply node n2", "BIRD's route")[0]["kernel"]
