"""calc/routes.py: which routes, FDB and neighbour entries a node needs. Pure, no root."""
from __future__ import annotations

import ipaddress

from hypothesis import given, strategies as st

from podnet.api.objects import Node, Resource
from podnet.calc.routes import (VXLAN_DEV, Fdb, Neighbour, Route, link_local_of, plan_routes,
                                vtep_mac)


def node(name: str, *ips: str, mac: str | None = None) -> Node:
    st_: dict = {"addresses": [{"type": "InternalIP", "address": ip} for ip in ips]}
    if mac:
        st_["podnet"] = {"vxlanMAC": mac}
    return Node({"kind": "Node", "metadata": {"name": name}, "status": st_})


def block(cidr: str, owner: str, allocations: dict[int, str] | None = None) -> Resource:
    return Resource({"kind": "IPAMBlock", "metadata": {"name": cidr.replace("/", "-")},
                     "spec": {"cidr": cidr, "affinity": f"host:{owner}" if owner else None,
                              "allocations": {str(k): v for k, v in (allocations or {}).items()}}})


NODES = [node("n1", "198.18.0.11", "fd00:198:18::11"), node("n2", "198.18.0.12", "fd00:198:18::12"),
         node("n3", "198.18.0.13")]
BLOCKS = [block("10.244.0.0/26", "n1"), block("10.244.1.0/26", "n2"),
          block("fd00:10:244::/122", "n2"), block("10.244.2.0/26", "n3"),
          block("fd00:10:244::40/122", "n3")]


def test_direct_routes_go_to_each_owner_by_family():
    plan = plan_routes("n1", NODES, BLOCKS, "none")
    assert plan.routes == (
        Route("10.244.1.0/26", "198.18.0.12", "", "n2"),
        Route("10.244.2.0/26", "198.18.0.13", "", "n3"),
        Route("fd00:10:244::/122", "fd00:198:18::12", "", "n2"),
    )  # n3 has no IPv6 address: no IPv6 route to it; n1's own block: no route
    assert plan.fdb == () and plan.neighbours == ()


def test_vxlan_routes_have_gateway_neighbour_and_fdb():
    plan = plan_routes("n1", NODES, BLOCKS, "vxlan")
    mac2, mac3 = vtep_mac("198.18.0.12"), vtep_mac("198.18.0.13")
    assert Route("10.244.1.0/26", "198.18.0.12", VXLAN_DEV, "n2") in plan.routes
    assert Route("fd00:10:244::40/122", link_local_of(mac3), VXLAN_DEV, "n3") in plan.routes
    assert set(plan.fdb) == {Fdb(mac2, "198.18.0.12"), Fdb(mac3, "198.18.0.13")}
    assert Neighbour(link_local_of(mac2), mac2) in plan.neighbours
    assert Neighbour("198.18.0.12", mac2) in plan.neighbours
    assert all(r.node != "n1" for r in plan.routes)


def test_published_mac_wins_over_derived():
    nodes = [node("n1", "198.18.0.11"), node("n2", "198.18.0.12", mac="0e:00:00:00:00:02")]
    plan = plan_routes("n1", nodes, [block("10.244.1.0/26", "n2")], "vxlan")
    assert plan.fdb == (Fdb("0e:00:00:00:00:02", "198.18.0.12"),)


def test_borrowed_address_gets_a_host_route_to_the_borrower():
    b = block("10.244.1.0/26", "n2", {5: "n3/podnet/cid/eth0", 6: "n2/podnet/cid2/eth0"})
    plan = plan_routes("n1", NODES, [b], "none")
    assert Route("10.244.1.5/32", "198.18.0.13", "", "n3") in plan.routes
    assert Route("10.244.1.6/32", "198.18.0.12", "", "n2") not in plan.routes
    # on the owner itself, the borrowed address is routed to the borrower too
    assert Route("10.244.1.5/32", "198.18.0.13", "", "n3") in plan_routes("n2", NODES, [b]).routes
    # and the borrower routes it locally (the CNI plugin's /32), not via anyone
    assert all(r.dst != "10.244.1.5/32" for r in plan_routes("n3", NODES, [b]).routes)


def test_unknown_owner_bad_cidr_and_unowned_blocks_are_skipped():
    blocks = [block("10.244.9.0/26", "ghost"), block("not-a-cidr", "n2"), block("10.244.8.0/26", "")]
    assert plan_routes("n1", NODES, blocks).routes == ()


def test_order_of_input_does_not_matter():
    a = plan_routes("n2", NODES, BLOCKS, "vxlan")
    b = plan_routes("n2", list(reversed(NODES)), list(reversed(BLOCKS)), "vxlan")
    assert a == b


@given(st.integers(min_value=1, max_value=2**32 - 1))
def test_vtep_mac_is_unicast_local_and_link_local_is_eui64(n):
    ip = str(ipaddress.IPv4Address(n))
    mac = vtep_mac(ip)
    first = int(mac.split(":")[0], 16)
    assert first & 1 == 0 and first & 2 == 2
    ll = ipaddress.IPv6Address(link_local_of(mac))
    assert ll.is_link_local and ll.packed[11:13] == b"\xff\xfe"


@given(st.lists(st.integers(min_value=0, max_value=255), min_size=1, max_size=30, unique=True),
       st.sampled_from(["none", "vxlan"]))
def test_every_foreign_block_is_routed_exactly_once(idx, encap):
    blocks = [block(f"10.244.{i}.0/26", f"n{1 + i % 3}") for i in idx]
    plan = plan_routes("n1", NODES, blocks, encap)
    foreign = {f"10.244.{i}.0/26" for i in idx if i % 3 != 0}
    assert {r.dst for r in plan.routes} == foreign
    assert len({r.dst for r in plan.routes}) == len(plan.routes)


def test_the_vxlan_mac_an_agent_published_as_an_annotation_is_used():
    """Through the Kubernetes API the agent's report is an annotation (status.podnet is
    not a Node field there)."""
    import json
    from podnet.api.core import PODNET_ANNOTATION
    from podnet.calc.routes import node_addrs
    n = node("n2", "198.18.0.12")
    annotated = Node({**n.raw, "metadata": {"name": "n2", "annotations": {
        PODNET_ANNOTATION: json.dumps({"vxlanMAC": "02:aa:bb:cc:dd:ee"})}}})
    assert node_addrs(annotated).mac == "02:aa:bb:cc:dd:ee"
    assert node_addrs(n).mac == vtep_mac("198.18.0.12")
