"""calc/bgp.py: a node's BGP peers, originated and accepted prefixes. Pure, no root.

Address plan: the lab's (underlay 198.18.0.0/24 and fd00:198:18::/64, nodes .11, .12,
.13; router .1), pools 10.244.0.0/16 and fd00:10:244::/56."""
from __future__ import annotations

from typing import Any

from podnet.api.objects import IPPool, Node, Resource, from_dict
from podnet.calc.bgp import DEFAULT_ASN, Peer, plan_bgp


def node(name: str, i: int, labels: dict[str, str] | None = None, rr: str = "") -> Node:
    spec: dict[str, Any] = {"bgp": {"routeReflectorClusterID": rr}} if rr else {}
    obj = from_dict({"apiVersion": "podnet.io/v1", "kind": "Node",
                     "metadata": {"name": name, "labels": labels or {}}, "spec": spec,
                     "status": {"addresses": [{"type": "InternalIP", "address": f"198.18.0.{10 + i}"},
                                              {"type": "InternalIP", "address": f"fd00:198:18::{10 + i}"}]}})
    assert isinstance(obj, Node)
    return obj


def obj(kind: str, name: str, spec: dict[str, Any]) -> Resource:
    return from_dict({"apiVersion": "podnet.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def pool(name: str, cidr: str, **more: Any) -> IPPool:
    p = obj("IPPool", name, {"cidr": cidr, **more})
    assert isinstance(p, IPPool)
    return p


NODES = [node("n1", 1), node("n2", 2), node("n3", 3)]
BLOCKS = [obj("IPAMBlock", "b1", {"cidr": "10.244.0.0/26", "affinity": "host:n1"}),
          obj("IPAMBlock", "b2", {"cidr": "10.244.0.64/26", "affinity": "host:n2"}),
          obj("IPAMBlock", "b16", {"cidr": "fd00:10:244::/122", "affinity": "host:n1"})]
POOLS = [pool("v4", "10.244.0.0/16"), pool("v6", "fd00:10:244::/56")]
TOR = obj("BGPPeer", "tor", {"peerIP": "198.18.0.1", "asNumber": 65000})


def test_full_mesh_by_default_one_session_per_family():
    plan = plan_bgp("n1", NODES, BLOCKS, POOLS, [], [])
    assert plan is not None
    assert plan.asn == DEFAULT_ASN and plan.router_id == "198.18.0.11"
    assert [(p.name, p.ip, p.internal) for p in plan.peers] == [
        ("pn_mesh_n2_4", "198.18.0.12", True), ("pn_mesh_n2_6", "fd00:198:18::12", True),
        ("pn_mesh_n3_4", "198.18.0.13", True), ("pn_mesh_n3_6", "fd00:198:18::13", True)]
    assert plan.blocks == ("10.244.0.0/26", "fd00:10:244::/122")  # its own, never n2's
    assert plan.accept == ("10.244.0.0/16", "fd00:10:244::/56")


def test_no_plan_before_the_node_is_registered():
    assert plan_bgp("n9", NODES, BLOCKS, POOLS, [], []) is None


def test_mesh_off_and_a_global_peer_with_its_own_as():
    cfg = obj("BGPConfiguration", "default", {"asNumber": 64600, "nodeToNodeMeshEnabled": False})
    plan = plan_bgp("n2", NODES, BLOCKS, POOLS, [cfg], [TOR])
    assert plan is not None and plan.asn == 64600
    assert plan.peers == (Peer("pn_peer_tor_4", "198.18.0.1", 65000, False),)


def test_only_the_configuration_named_default_counts():
    other = obj("BGPConfiguration", "other", {"nodeToNodeMeshEnabled": False})
    plan = plan_bgp("n1", NODES, BLOCKS, POOLS, [other], [])
    assert plan is not None and len(plan.peers) == 4


def test_per_node_and_selected_peers():
    n2_only = obj("BGPPeer", "n2-only", {"peerIP": "198.18.0.99", "asNumber": 65001, "node": "n2"})
    racked = obj("BGPPeer", "rack", {"peerIP": "198.18.0.98", "asNumber": 65002,
                                     "nodeSelector": "rack == 'a'"})
    nodes = [node("n1", 1, {"rack": "a"}), node("n2", 2)]
    p1 = plan_bgp("n1", nodes, [], POOLS, [], [n2_only, racked])
    p2 = plan_bgp("n2", nodes, [], POOLS, [], [n2_only, racked])
    assert p1 is not None and p2 is not None
    assert [p.ip for p in p1.peers if not p.internal] == ["198.18.0.98"]
    assert [p.ip for p in p2.peers if not p.internal] == ["198.18.0.99"]


def test_route_reflector_peers_with_every_client_and_clients_only_with_it():
    nodes = [node("n1", 1, {"route-reflector": "true"}, rr="1.0.0.1"), node("n2", 2), node("n3", 3)]
    cfg = obj("BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False})
    rr = obj("BGPPeer", "to-rr", {"peerSelector": "route-reflector == 'true'"})
    p1, p2 = (plan_bgp(n, nodes, BLOCKS, POOLS, [cfg], [rr]) for n in ("n1", "n2"))
    assert p1 is not None and p2 is not None
    assert p1.rr_cluster_id == "1.0.0.1"
    assert {(p.ip, p.rr_client) for p in p1.peers} == {
        ("198.18.0.12", True), ("fd00:198:18::12", True), ("198.18.0.13", True), ("fd00:198:18::13", True)}
    assert {p.ip for p in p2.peers} == {"198.18.0.11", "fd00:198:18::11"}
    assert not any(p.rr_client for p in p2.peers)


def _with_asn(n: Node, asn: Any) -> Node:
    d = n.to_dict()
    d["spec"] = {**d.get("spec", {}), "bgp": {**(d.get("spec") or {}).get("bgp", {}), "asNumber": asn}}
    out = from_dict(d)
    assert isinstance(out, Node)
    return out


def test_a_node_of_its_own_as_peers_over_ebgp():
    """Calico's Node spec.bgp.asNumber (AS per rack): n2 in AS 65002, the others in the
    cluster's AS; sessions with n2 are eBGP on both ends; an unusable value is ignored."""
    nodes = [NODES[0], _with_asn(NODES[1], 65002), NODES[2]]
    p1, p2 = (plan_bgp(n, nodes, BLOCKS, POOLS, [], []) for n in ("n1", "n2"))
    assert p1 is not None and p2 is not None
    assert p1.asn == DEFAULT_ASN and p2.asn == 65002
    assert {(p.ip, p.asn) for p in p1.peers if p.family == 4} == {("198.18.0.12", 65002), ("198.18.0.13", DEFAULT_ASN)}
    assert {p.asn for p in p2.peers} == {DEFAULT_ASN} and all(p.internal for p in p2.peers)
    cfg = obj("BGPConfiguration", "default", {"asNumber": 64600})
    p3 = plan_bgp("n3", [NODES[0], _with_asn(NODES[1], "65002"), NODES[2]], BLOCKS, POOLS, [cfg], [])
    assert p3 is not None and p3.asn == 64600 and {p.asn for p in p3.peers} == {64600}


def test_a_reflector_reflects_only_to_nodes_of_its_own_as():
    nodes = [node("n1", 1, {"route-reflector": "true"}, rr="1.0.0.1"), _with_asn(node("n2", 2), 65002), node("n3", 3)]
    cfg = obj("BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False})
    rr = obj("BGPPeer", "to-rr", {"peerSelector": "route-reflector == 'true'"})
    p1 = plan_bgp("n1", nodes, BLOCKS, POOLS, [cfg], [rr])
    assert p1 is not None
    assert {(p.ip, p.asn, p.rr_client) for p in p1.peers if p.family == 4} == {
        ("198.18.0.12", 65002, False), ("198.18.0.13", DEFAULT_ASN, True)}


def test_a_peer_address_that_is_a_node_is_a_cluster_peer():
    to_n3 = obj("BGPPeer", "to-n3", {"peerIP": "198.18.0.13", "asNumber": 64512})
    cfg = obj("BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False})
    plan = plan_bgp("n1", NODES, BLOCKS, POOLS, [cfg], [to_n3])
    assert plan is not None
    assert [(p.ip, p.internal) for p in plan.peers] == [("198.18.0.13", True), ("fd00:198:18::13", True)]


def test_pools_not_exported_services_advertised_disabled_pools_not_accepted():
    pools = POOLS + [pool("private", "10.250.0.0/16", disableBGPExport=True),
                     pool("off", "10.251.0.0/16", disabled=True),
                     pool("lb", "203.0.113.128/25", allowedUses=["LoadBalancer"])]
    cfg = obj("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                                              "serviceExternalIPs": [{"cidr": "198.51.100.0/24"}]})
    plan = plan_bgp("n1", NODES, BLOCKS, pools, [cfg], [TOR])
    assert plan is not None
    assert plan.no_export == ("10.250.0.0/16",)
    assert plan.services == ("10.96.0.0/12", "198.51.100.0/24")
    assert plan.accept == ("10.244.0.0/16", "10.250.0.0/16", "fd00:10:244::/56")


def test_a_borrowed_address_is_originated_by_its_borrower():
    blocks = BLOCKS + [obj("IPAMBlock", "b3", {"cidr": "10.244.0.128/26", "affinity": "host:n1",
                                               "allocations": {"5": "n3/default/p/eth0"}})]
    p1, p3 = (plan_bgp(n, NODES, blocks, POOLS, [], []) for n in ("n1", "n3"))
    assert p1 is not None and p3 is not None
    assert "10.244.0.128/26" in p1.blocks and "10.244.0.133/32" not in p1.blocks
    assert p3.blocks == ("10.244.0.133/32",)


def _svc(name: str, etp: str, ip: str, external: list[str]) -> Any:
    from builders import make_service
    return make_service("default", name, lambda s: s["spec"].update(
        externalTrafficPolicy=etp, externalIPs=external), ip=ip)


def test_service_ranges_and_local_services_only_where_their_endpoints_are():
    from builders import endpoint, make_slice
    cfg = obj("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                                              "serviceExternalIPs": [{"cidr": "198.51.100.0/24"}]})
    svcs = [_svc("local", "Local", "10.96.0.20", ["198.51.100.7", "192.0.2.1"]),
            _svc("cluster", "Cluster", "10.96.0.30", ["198.51.100.8"])]
    slices = [make_slice("default", "local", [endpoint("10.244.0.5", node="n1"),
                                              endpoint("10.244.0.70", node="n2", ready=False)]),
              make_slice("default", "cluster", [endpoint("10.244.0.6", node="n1")])]
    plans = {n: plan_bgp(n, NODES, BLOCKS, POOLS, [cfg], [TOR], svcs, slices) for n in ("n1", "n2")}
    ranges = ("10.96.0.0/12", "198.51.100.0/24")
    assert plans["n1"] is not None and plans["n2"] is not None
    # the Local Service's addresses inside the ranges, from n1 only (n2's endpoint is not ready);
    # 192.0.2.1 lies in no configured range: not announced
    assert plans["n1"].services == ("10.96.0.0/12", "10.96.0.20/32", "198.51.100.0/24", "198.51.100.7/32")
    assert plans["n2"].services == ranges
