"""dataplane/bird/conf.py: BIRD configuration text, golden-tested; each golden file is also
parsed by the real BIRD (`bird -p`, no root needed), so a golden BIRD would refuse fails.
dataplane/bird/daemon.py's parser of `birdc show protocols all`, on the lab router's real output."""
from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from golden_files import GOLDEN_DIR, check_golden
from needs import missing
from podnet.api.objects import Node, from_dict
from podnet.api.validate import validate_object
from podnet.calc.bgp import plan_bgp
from podnet.dataplane.bird.conf import RouterPeering, render_node, render_router
from podnet.dataplane.bird.daemon import BIRD_BIN, available, parse_protocols

from test_bgp_plan import BLOCKS, NODES, POOLS, TOR, _with_asn, node, obj, pool

GOLDEN = GOLDEN_DIR / "bird"
HERE = Path(__file__).parent


def _bird_parses(text: str, tmp_path: Path) -> None:
    why = available()
    if why:
        missing(why)
    f = tmp_path / "bird.conf"
    f.write_text(text)
    cp = subprocess.run([BIRD_BIN, "-p", "-c", str(f)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr


def _cases() -> dict[str, str]:
    rr_nodes = [node("n1", 1, {"route-reflector": "true"}, rr="1.0.0.1"), node("n2", 2), node("n3", 3)]
    mesh_off = obj("BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False,
                                                   "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]})
    services = obj("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]})
    to_rr = obj("BGPPeer", "to-rr", {"peerSelector": "route-reflector == 'true'"})
    pools = POOLS + [pool("private", "10.250.0.0/16", disableBGPExport=True)]
    # two racks: n1, n3 in 198.18.0.0/24, n2 in 198.18.1.0/24 (as their agents publish), the
    # rack's router as the ToR, and a CrossSubnet pool the agents route themselves
    racks = [_in_rack(node("n1", 1), 0), _in_rack(node("n2", 2), 1), _in_rack(node("n3", 3), 0)]
    xs_pools = POOLS + [pool("xs", "10.246.0.0/16", vxlanMode="CrossSubnet")]
    plans = {
        "racks-n1": plan_bgp("n1", racks, BLOCKS, xs_pools, [], [TOR]),
        "mesh-n1": plan_bgp("n1", NODES, BLOCKS, POOLS, [], []),
        "mesh-tor-services-n1": plan_bgp("n1", NODES, BLOCKS, pools, [services], [TOR]),
        "rr-reflector-n1": plan_bgp("n1", rr_nodes, BLOCKS, POOLS, [mesh_off], [to_rr]),
        "rr-client-n2": plan_bgp("n2", rr_nodes, BLOCKS, POOLS, [mesh_off], [to_rr]),
        # AS per rack (Calico's Node spec.bgp.asNumber): n2, alone in rack b, in AS 65002
        "as-per-rack-n1": plan_bgp("n1", [racks[0], _with_asn(racks[1], 65002), racks[2]], BLOCKS, xs_pools,
                                   [], [TOR]),
    }
    out = {}
    for name, plan in plans.items():
        assert plan is not None
        out[name] = render_node(plan)
    out["router-racks"] = render_router(RouterPeering(
        "198.18.0.1", 65000, (("198.18.0.1", "198.18.0.0/24"), ("198.18.1.1", "198.18.1.0/24")),
        ("198.18.0.0/24", "198.18.1.0/24", "203.0.113.0/24")))
    out["router"] = render_router(RouterPeering(
        "198.18.0.1", 65000, (("198.18.0.1", "198.18.0.0/24"), ("fd00:198:18::1", "fd00:198:18::/64")),
        ("198.18.0.0/24", "203.0.113.0/24", "fd00:198:18::/64", "fd00:203:113::/64")))
    return out


def _in_rack(n: Node, rack: int) -> Node:
    """The node as its agent publishes it in rack `rack`: its address moved into the rack's
    subnet, with the interface's prefix (status.podnet.ipv4Address/ipv6Address)."""
    d = n.to_dict()
    addrs = d["status"]["addresses"]
    ip4 = addrs[0]["address"].replace("198.18.0.", f"198.18.{rack}.")
    ip6 = addrs[1]["address"].replace("fd00:198:18::", f"fd00:198:18:{rack}::" if rack else "fd00:198:18::")
    addrs[0]["address"], addrs[1]["address"] = ip4, ip6
    d["status"]["podnet"] = {"ipv4Address": f"{ip4}/24", "ipv6Address": f"{ip6}/64"}
    out = from_dict(d)
    assert isinstance(out, Node)
    return out


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bird_conf_golden(name: str, tmp_path: Path) -> None:
    check_golden(GOLDEN / f"{name}.conf", CASES[name])
    _bird_parses(CASES[name], tmp_path)


def test_filters_say_what_podnet_trusts():
    mesh = CASES["mesh-n1"]
    # from nodes: pool prefixes only; the kernel gets only what BGP learned
    assert "filter pn_import4 {\n    if net ~ [ 10.244.0.0/16+ ] then accept;\n    reject;\n}" in mesh
    assert "export filter { if source = RTS_BGP then accept; reject; };" in mesh
    tor = CASES["mesh-tor-services-n1"]
    session = tor.split("protocol bgp pn_peer_tor_4")[1]
    assert "import none;" in session and "export filter pn_export_peer4;" in session
    assert "if net ~ [ 10.250.0.0/16+ ] then reject;" in tor  # disableBGPExport
    assert "route 10.96.0.0/12 blackhole;" in tor
    assert "rr client;" in CASES["rr-reflector-n1"] and "rr client;" not in CASES["rr-client-n2"]


def test_racks_peers_in_another_rack_are_multihop_and_vxlan_pools_stay_out_of_the_kernel():
    conf = CASES["racks-n1"]
    far = conf.split("protocol bgp pn_mesh_n2_4")[1].split("\n}\n")[0]
    near = conf.split("protocol bgp pn_mesh_n3_4")[1].split("\n}\n")[0]
    tor = conf.split("protocol bgp pn_peer_tor_4")[1].split("\n}\n")[0]
    assert "multihop;" in far and "gateway recursive;" in far and "direct;" not in far
    assert "direct;" in near and "gateway direct;" in near and "multihop" not in near
    assert "direct;" in tor  # the router's address in n1's own rack
    # next hops in the other rack resolve through the default route, the one route learned
    assert "learn;" in conf and "import filter { if net = 0.0.0.0/0 then accept; reject; };" in conf
    assert "export filter { if net ~ [ 10.246.0.0/16+ ] then reject; if source = RTS_BGP then accept;" in conf
    assert "learn;" not in CASES["mesh-n1"] and "10.246" not in CASES["mesh-n1"]
    assert "pn_nodes4_2" in CASES["router-racks"] and "neighbor range 198.18.1.0/24" in CASES["router-racks"]


def test_as_per_rack_sessions_and_a_router_open_to_any_node_as():
    conf = CASES["as-per-rack-n1"]
    far = conf.split("protocol bgp pn_mesh_n2_4")[1].split("\n}\n")[0]
    near = conf.split("protocol bgp pn_mesh_n3_4")[1].split("\n}\n")[0]
    assert "local 198.18.0.11 as 64512;" in far and "neighbor 198.18.1.12 as 65002;" in far
    assert "neighbor 198.18.0.13 as 64512;" in near
    # the router takes any AS but its own, so a node's AS may change without reconfiguring it
    assert "neighbor range 198.18.1.0/24 external;" in CASES["router-racks"]


def test_graceful_restart_on_every_session_and_kernel_routes_kept_while_recovering():
    for name, conf in CASES.items():
        sessions = conf.split("protocol bgp ")[1:]
        assert sessions and all("graceful restart on;\n    graceful restart time 30;" in s for s in sessions), name
        assert "graceful restart wait 10;" in conf, name
        kernels = conf.split("protocol kernel ")[1:]
        assert len(kernels) == 2 and all("graceful restart on;" in k for k in kernels), name


def test_birdc_protocols_parsed():
    text = (HERE / "router_show_protocols_all.txt").read_text()
    got = parse_protocols(text, now=datetime(2026, 12, 3, 10, 6, 0))
    by_name = {s.name: s for s in got}
    assert by_name["pn_nodes4"].state == "start" and by_name["pn_nodes4"].bgp_state == "Passive"
    est = [s for s in got if s.bgp_state == "Established"]
    assert len(est) == 6
    assert {s.neighbor for s in est} == {"198.18.0.11", "198.18.0.12", "198.18.0.13",
                                         "fd00:198:18::11", "fd00:198:18::12", "fd00:198:18::13"}
    # n1 and n2 had a block per family, n2 one more of a second pool, n3 none yet
    assert sum(s.imported for s in est) == 5
    assert all(s.uptime > 0 for s in est)


@pytest.mark.parametrize("kind,spec,msg", [
    ("BGPPeer", {"asNumber": 65000}, "spec.peerIP: is required (or peerSelector)"),
    ("BGPPeer", {"peerIP": "198.18.0.1"}, "spec.asNumber: is required"),
    ("BGPPeer", {"peerIP": "nope", "asNumber": 1}, "spec.peerIP"),
    ("BGPPeer", {"peerIP": "198.18.0.1", "asNumber": 0}, "spec.asNumber: 0 is not in 1..4294967295"),
    ("BGPPeer", {"peerIP": "198.18.0.1", "asNumber": 1, "peerSelector": "all()"},
     "spec.peerSelector: may not be set together with peerIP"),
    ("BGPPeer", {"peerSelector": "has("}, "spec.peerSelector"),
    ("BGPConfiguration", {"asNumber": 4294967296}, "spec.asNumber"),
    ("BGPConfiguration", {"nodeToNodeMeshEnabled": "yes"}, "spec.nodeToNodeMeshEnabled"),
    ("BGPConfiguration", {"serviceClusterIPs": [{"cidr": "10.96.0.0/99"}]}, "spec.serviceClusterIPs[0].cidr"),
])
def test_bgp_kinds_validated(kind: str, spec: dict, msg: str) -> None:
    errs = [str(e) for e in validate_object(obj(kind, "x", spec))]
    assert any(msg in e for e in errs), errs


def test_valid_bgp_objects_pass():
    assert validate_object(TOR) == []
    assert validate_object(obj("BGPConfiguration", "default", {
        "asNumber": 64512, "nodeToNodeMeshEnabled": False,
        "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]})) == []
    assert validate_object(obj("BGPPeer", "rr", {"peerSelector": "route-reflector == 'true'",
                                                 "nodeSelector": "all()"})) == []


@pytest.mark.parametrize("spec,msg", [
    ({"ipipMode": "Always"}, "spec.ipipMode: \"Always\": podnet has no IP-in-IP encapsulation: this kernel "
                             "has no ipip device"),
    ({"ipipMode": "CrossSubnet"}, "Unknown device type"),
    ({"vxlanMode": "Sometimes"}, "spec.vxlanMode: \"Sometimes\" is not one of Always, CrossSubnet, Never"),
    ({"disableBGPExport": "yes"}, "spec.disableBGPExport"),
])
def test_pool_encapsulation_refused_with_its_reason(spec: dict, msg: str) -> None:
    assert validate_object(obj("IPPool", "p", {"cidr": "10.244.0.0/16", "vxlanMode": "CrossSubnet"})) == []
    errs = [str(e) for e in validate_object(obj("IPPool", "p", {"cidr": "10.244.0.0/16", **spec}))]
    assert any(msg in e for e in errs), errs


def test_pool_encapsulation_accepted():
    for spec in ({"ipipMode": "Never", "vxlanMode": "Always"}, {"vxlanMode": "Never", "disableBGPExport": True}):
        assert validate_object(obj("IPPool", "p", {"cidr": "10.244.0.0/16", **spec})) == []
