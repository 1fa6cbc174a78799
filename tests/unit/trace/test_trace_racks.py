"""`podnet trace` in a lab of racks (issue 21 §3), pure: the prediction from a hand-built
two-rack state (trace_racks_state.py) against golden text, and the parts of the
confirmation that are new there (the VXLAN packet the router forwards, the outer route
lookups, BIRD's word on a route) against kernel answers in their own formats."""
from __future__ import annotations

import pytest

import trace_racks_state as rk
from golden_files import GOLDEN_DIR, check_golden
from podnet.api.objects import from_dict
from podnet.dataplane.bird.daemon import parse_route_all
from podnet.trace import render
from podnet.trace.confirm import compare
from podnet.trace.kernel import Observation, _table_script
from podnet.trace.nftrace import parse
from podnet.trace.path import predict
from podnet.trace.resolve import find_pod, parse_dest, resolve

GOLDEN = GOLDEN_DIR / "trace"
SPORT = 45000
CASES = {  # name -> (src, dst, family)
    "racks-crosssubnet-other-rack": ("p1", "p2:9090", 4),
    "racks-crosssubnet-same-rack": ("p1", "p3:9090", 4),
    "racks-bgp-never-other-rack": ("q1", "q2:9090", 4),
    "racks-crosssubnet-other-rack-ipv6": ("p1", "p2:9090", 6),
}


def run(name: str, sport: int | None = None):
    src, dst, fam = CASES[name]
    st, facts = rk.state(), rk.facts()
    pod = find_pod(st, "default", src)
    d = parse_dest(dst)
    return predict(st, facts, pod, resolve(st, "default", d.text, fam, {}), d.port, d.proto, fam, sport=sport)


def kinds(path) -> list[str]:
    return [h.where.split(" (on ")[0] for h in path.hops]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    check_golden(GOLDEN / f"{name}.txt", render.text(run(name)))


def test_crosssubnet_across_racks_is_wrapped_and_the_router_routes_the_outer_packet():
    t = run("racks-crosssubnet-other-rack")
    assert t.request.outcome == t.reply.outcome == "delivered"
    assert kinds(t.request) == ["pod default/p1", "node n1", "underlay (bridge br0)", "router",
                                "underlay (bridge br1)", "node n2", "pod default/p2"]
    n1, ul0, router, ul1, n2 = t.request.hops[1:6]
    assert n1.oif == "pnvx" and n1.step("encap") is not None
    outer_route = [s for s in n1.steps if s.kind == "route" and s.data.get("outer")]
    assert [s.data["route"] for s in outer_route] == ["default via 198.18.0.1 dev eth0"]
    assert (ul0.iif, ul0.oif, ul1.iif, ul1.oif) == ("n1", "rt", "rt1", "n2")
    # the router sees the outer IPv4 packet only: routed by its rack subnet, TTL 64 -> 63
    assert (router.iif, router.oif) == ("eth0", "eth2")
    o = router.headers.outer
    assert (o.l3.src, o.l3.dst, o.l3.ttl, o.l4.dport) == ("198.18.0.11", "198.18.1.12", 63, 4789)
    assert o.l2.src == "<eth2 of router>" and o.l2.dst == "<eth0 of node n2>"
    assert router.headers.l3.ttl == 63  # the inner packet is not touched by the router
    assert n2.iif == "pnvx" and n2.step("decap") is not None
    assert kinds(t.reply)[3] == "router" and t.reply.hops[3].oif == "eth0"


def test_crosssubnet_in_one_rack_is_bare_and_direct():
    t = run("racks-crosssubnet-same-rack")
    assert kinds(t.request) == ["pod default/p1", "node n1", "underlay (bridge br0)", "node n3", "pod default/p3"]
    n1 = t.request.hops[1]
    assert n1.oif == "eth0" and n1.step("encap") is None and n1.headers.outer is None
    assert n1.step("route").data["gateway"] == "198.18.0.13"


def test_never_with_bgp_goes_through_the_router_on_birds_routes():
    t = run("racks-bgp-never-other-rack")
    assert kinds(t.request) == ["pod default/q1", "node n1", "underlay (bridge br0)", "router",
                                "underlay (bridge br1)", "node n2", "pod default/q2"]
    assert all(h.headers is None or h.headers.outer is None for h in t.request.hops)
    n1, router = t.request.hops[1], t.request.hops[3]
    bgp = n1.step("route").data["bgp"]
    # n1 learned n2's block from n2 itself (the mesh), next hop n2, resolved via the rack's router
    assert bgp == {"prefix": "10.246.0.16/28", "owner": "n2", "next_hop": "198.18.1.12",
                   "session": "pn_mesh_n2_4", "peer": "n2", "as_path": ""}
    assert n1.step("route").data["gateway"] == "198.18.0.1"
    assert router.step("route").data["gateway"] == "198.18.1.12" and router.oif == "eth2"
    assert router.step("route").data["bgp"]["owner"] == "n2"
    assert router.step("route").data["bgp"]["as_path"] == "64512"  # the router is in AS 65000: eBGP


def test_a_node_in_an_as_of_its_own_is_learned_over_ebgp():
    """AS per rack (Calico's Node spec.bgp.asNumber): n2 in AS 65002; n1 learns n2's block
    over eBGP, its AS path 65002, and so does the router."""
    st = rk.state()
    n2 = st.get("Node", "", "n2")
    d = n2.to_dict()
    d["spec"] = {"bgp": {"asNumber": 65002}}
    st.put(from_dict(d))
    pod = find_pod(st, "default", "q1")
    t = predict(st, rk.facts(), pod, resolve(st, "default", "10.246.0.18", 4, {}), 9090, "TCP", 4)
    n1, router = t.request.hops[1], t.request.hops[3]
    assert n1.step("route").data["bgp"]["as_path"] == "65002"
    assert "(session pn_mesh_n2_4, eBGP from AS 65002)" in n1.step("route").text
    assert router.step("route").data["bgp"]["as_path"] == "65002"
    back = t.reply.hops[1].step("route").data["bgp"]  # n2 learns n1's block from AS 64512
    assert back["as_path"] == "64512" and back["session"] == "pn_mesh_n1_4"


def test_ipv6_inside_ipv4_vxlan_across_racks():
    t = run("racks-crosssubnet-other-rack-ipv6")
    router = t.request.hops[3]
    assert router.where == "router" and router.headers.l3.family == 6 and router.headers.outer.l3.family == 4


def test_the_router_marks_vxlan_packets_by_the_inner_port():
    """Inner ports sit 50 bytes (IPv4) or 70 (IPv6) past the outer UDP header."""
    v4 = _table_script("pntrace1", "TCP", SPORT, 4)
    assert f"udp dport 4789 @th,224,16 0x0800 @th,400,16 {SPORT} meta nftrace set 1" in v4
    assert f"@th,416,16 {SPORT}" in v4
    assert "@th,560,16" in _table_script("pntrace1", "TCP", SPORT, 6)
    assert "4789" not in _table_script("pntrace1", "TCP", SPORT)


# ---- the confirmation ------------------------------------------------------------------
OUTER = ('packet: iif "{iif}" oif "{oif}" ether saddr 0a:00:00:00:00:01 ether daddr 0a:00:00:00:00:02 '
         'ip saddr {s} ip daddr {d} ip dscp cs0 ip ecn not-ect ip ttl {ttl} ip id 0 ip protocol udp '
         'ip length 110 udp sport {osp} udp dport 4789 udp length 90 udp checksum 0')


def router_saw(s: str, d: str, iif: str, oif: str, ttl: int = 64) -> str:
    return f"trace id ee01 inet pntrace7 post {OUTER.format(iif=iif, oif=oif, s=s, d=d, ttl=ttl, osp=51234)}"


def test_the_wrapped_packet_at_the_router_is_found_by_its_outer_addresses():
    t = run("racks-crosssubnet-other-rack", SPORT)
    obs = Observation(SPORT, "connected", {"pn-rk-rt": parse(
        "trace id ee01 inet pntrace7 pre " + OUTER.format(iif="eth0", oif="", s="198.18.0.11", d="198.18.1.12",
                                                             ttl=64, osp=51234).replace(' oif ""', "") + "\n"
        + router_saw("198.18.0.11", "198.18.1.12", "eth0", "eth2"))})
    checks = [c for c in compare(t, obs, lambda *a: {"error": "not asked"}, {"pn-rk-rt"})
              if c.where == "request router"]
    assert [(c.what, c.ok) for c in checks if "ip route get" not in c.what] == \
        [("packet seen", True), ("leaves by", True), ("VXLAN outer headers arriving", True)]
    wrong = Observation(SPORT, "connected", {"pn-rk-rt": parse(router_saw("198.18.0.11", "198.18.1.12", "eth0",
                                                                          "eth0"))})
    bad = [c.line for c in compare(t, wrong, lambda *a: {"error": "x"}, {"pn-rk-rt"})
           if c.where == "request router" and not c.ok and "ip route get" not in c.what]
    assert bad == ["MISMATCH: request router: leaves by: predicted eth2, kernel eth0 — this is a podnet bug"]
    # a wrapped packet that arrived with another TTL (or from another VTEP) is told too
    ttl = Observation(SPORT, "connected", {"pn-rk-rt": parse(router_saw("198.18.0.11", "198.18.1.12", "eth0",
                                                                        "eth2", ttl=60))})
    bad = [c.line for c in compare(t, ttl, lambda *a: {"error": "x"}, {"pn-rk-rt"})
           if c.where == "request router" and not c.ok and "ip route get" not in c.what]
    assert bad == ["MISMATCH: request router: VXLAN outer headers arriving: predicted 198.18.0.11 -> 198.18.1.12 "
                   "ttl 64 udp dport 4789, kernel 198.18.0.11 -> 198.18.1.12 ttl 60 udp dport 4789 — this is a "
                   "podnet bug"]


def test_outer_route_lookups_are_asked_as_the_kernel_takes_them():
    """n1's VXLAN packet leaves from n1 itself (no `from ... iif`); the router looks the
    outer packet up as it arrived."""
    asked: list[tuple] = []

    def route_get(netns, dst, src, iif):
        asked.append((netns, dst, src, iif))
        return {"error": "recorded"}
    compare(run("racks-crosssubnet-other-rack", SPORT), Observation(SPORT, "connected"), route_get, set())
    assert ("pn-rk-n1", "198.18.1.12", None, None) in asked
    assert ("pn-rk-rt", "198.18.1.12", "198.18.0.11", "eth0") in asked
    assert ("pn-rk-n2", "198.18.0.11", None, None) in asked  # the reply's outer packet


BIRD_SHOW = """BIRD 2.0.12 ready.
Table master4:
10.246.0.16/28       unicast [pn_mesh_n2_4 16:58:03.125 from 198.18.1.12] * (100/?) [i]
\tvia 198.18.0.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 
\tBGP.next_hop: 198.18.1.12
\tBGP.local_pref: 100
"""


def test_birds_route_read_and_held_against_the_prediction():
    assert parse_route_all(BIRD_SHOW) == {"prefix": "10.246.0.16/28", "session": "pn_mesh_n2_4",
                                          "next_hop": "198.18.1.12", "as_path": ""}
    assert parse_route_all("BIRD 2.0.12 ready.\nNetwork not found\n") == {}
    t = run("racks-bgp-never-other-rack", SPORT)
    said = {("pn-rk-n1", "10.246.0.18"): {"prefix": "10.246.0.16/28", "proto": "bird", "session": "pn_mesh_n2_4",
                                          "next_hop": "198.18.1.12"},
            ("pn-rk-rt", "10.246.0.18"): {"prefix": "10.246.0.16/28", "proto": "bird", "session": "dynbgp4",
                                          "next_hop": "198.18.1.12", "as_path": "64512"}}
    checks = [c for c in compare(t, Observation(SPORT, "connected"), lambda *a: {"error": "-"}, set(),
                                 lambda ns, dst: said.get((ns, dst), {"error": "not asked"}))
              if c.where.startswith("request") and ("BGP" in c.what or "BIRD" in c.what or "kernel route" in c.what)]
    assert [c.ok for c in checks] == [True] * 4, [c.line for c in checks]
    # the kernel's route was a static one, and BIRD had it from another session: both told
    said[("pn-rk-n1", "10.246.0.18")] = {"prefix": "10.246.0.16/28", "proto": "static", "session": "pn_rr_n3_4",
                                         "next_hop": "198.18.1.12"}
    bad = [c.line for c in compare(t, Observation(SPORT, "connected"), lambda *a: {"error": "-"}, set(),
                                   lambda ns, dst: said.get((ns, dst), {"error": "not asked"}))
           if not c.ok and c.where == "request node n1" and "ip route get" not in c.what]
    assert bad == ["MISMATCH: request node n1: kernel route for 10.246.0.18: predicted 10.246.0.16/28 proto bird, "
                   "kernel 10.246.0.16/28 proto static — this is a podnet bug",
                   "MISMATCH: request node n1: BIRD's route 10.246.0.16/28 (announced by n2): predicted next hop "
                   "198.18.1.12 over session pn_mesh_n2_4, AS path (empty: iBGP), kernel next hop 198.18.1.12 over "
                   "session pn_rr_n3_4, AS path (empty: iBGP) — this is a podnet bug"]
