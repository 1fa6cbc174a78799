"""calc/encap.py and plan_routes across racks: per-pool vxlanMode decides, per peer, whether
a block's packets are wrapped in VXLAN, routed on the segment, left to BIRD or have no
route at all. Pure, no root."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, strategies as st

from podnet.api.objects import IPPool, Node, from_dict
from podnet.calc.encap import (VXLAN_OVERHEAD, Crossing, crossing, encapsulated_pools, pod_mtu, pool_mode,
                               same_subnet)
from podnet.calc.routes import VXLAN_DEV, plan_routes

from test_calc_routes import block


def racked(name: str, i: int, rack: int, published: bool = True) -> Node:
    """Node n<i> in rack `rack` (198.18.<rack>.0/24, fd00:198:18:<rack>::/64), with the
    subnets its agent publishes (or not yet)."""
    ip4, ip6 = f"198.18.{rack}.{10 + i}", f"fd00:198:18:{rack}::{10 + i}"
    st_: dict = {"addresses": [{"type": "InternalIP", "address": a} for a in (ip4, ip6)]}
    if published:
        st_["podnet"] = {"ipv4Address": f"{ip4}/24", "ipv6Address": f"{ip6}/64"}
    n = from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": name}, "status": st_})
    assert isinstance(n, Node)
    return n


def pool(cidr: str, mode: str | None) -> IPPool:
    spec = {"cidr": cidr, **({"vxlanMode": mode} if mode else {})}
    p = from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": cidr.replace("/", "-")},
                   "spec": spec})
    assert isinstance(p, IPPool)
    return p


# n1, n3 in rack 0; n2, n4 in rack 1 (the lab's round-robin)
RACKS = [racked("n1", 1, 0), racked("n2", 2, 1), racked("n3", 3, 0), racked("n4", 4, 1)]
BLOCKS = [block("10.244.1.0/26", "n2"), block("10.244.3.0/26", "n3"), block("10.244.4.0/26", "n4"),
          block("fd00:10:244::40/122", "n2"), block("fd00:10:244::80/122", "n3")]


def devs(plan) -> dict[str, str]:
    return {r.dst: r.dev or "direct" for r in plan.routes}


@pytest.mark.parametrize("mode,want", [
    ("CrossSubnet", {"10.244.1.0/26": VXLAN_DEV, "10.244.3.0/26": "direct", "10.244.4.0/26": VXLAN_DEV,
                     "fd00:10:244::40/122": VXLAN_DEV, "fd00:10:244::80/122": "direct"}),
    ("Always", {"10.244.1.0/26": VXLAN_DEV, "10.244.3.0/26": VXLAN_DEV, "10.244.4.0/26": VXLAN_DEV,
                "fd00:10:244::40/122": VXLAN_DEV, "fd00:10:244::80/122": VXLAN_DEV}),
    ("Never", {"10.244.3.0/26": "direct", "fd00:10:244::80/122": "direct"}),
])
def test_each_mode_across_two_racks(mode: str, want: dict[str, str]):
    pools = [pool("10.244.0.0/16", mode), pool("fd00:10:244::/56", mode)]
    plan = plan_routes("n1", RACKS, BLOCKS, "none", pools)
    assert devs(plan) == want
    if mode == "Never":  # the other rack's blocks: no route can work without BGP, and it is said
        assert {(r.dst, r.node) for r in plan.unroutable} == {
            ("10.244.1.0/26", "n2"), ("10.244.4.0/26", "n4"), ("fd00:10:244::40/122", "n2")}
    else:
        assert plan.unroutable == ()


def test_direct_routes_go_to_the_peer_itself_and_vxlan_ones_to_its_vtep():
    pools = [pool("10.244.0.0/16", "CrossSubnet")]
    plan = plan_routes("n1", RACKS, BLOCKS[:3], "none", pools)
    gw = {r.dst: r.gateway for r in plan.routes}
    assert gw == {"10.244.1.0/26": "198.18.1.12", "10.244.3.0/26": "198.18.0.13", "10.244.4.0/26": "198.18.1.14"}
    assert {f.dst for f in plan.fdb} == {"198.18.1.12", "198.18.1.14"}  # the other rack's VTEPs only


def test_under_bgp_never_pools_are_birds_and_encapsulating_pools_the_agents():
    pools = [pool("10.244.0.0/16", "Never"), pool("10.246.0.0/16", "CrossSubnet")]
    blocks = BLOCKS[:3] + [block("10.246.0.0/26", "n2"), block("10.246.0.64/26", "n3")]
    plan = plan_routes("n1", RACKS, blocks, "none", pools, routing="bgp")
    assert devs(plan) == {"10.246.0.0/26": VXLAN_DEV, "10.246.0.64/26": "direct"}
    assert plan.unroutable == ()
    assert encapsulated_pools(pools) == ["10.246.0.0/16"]


def test_a_pool_that_does_not_say_takes_the_agents_encap_and_the_longest_pool_wins():
    pools = [pool("10.244.0.0/16", None), pool("10.244.3.0/24", "Always")]
    assert pool_mode("10.244.1.0/26", pools, "CrossSubnet") == "CrossSubnet"
    assert pool_mode("10.244.3.0/26", pools, "Never") == "Always"
    assert pool_mode("10.99.0.0/26", pools, "Never") == "Never"  # no pool holds it
    plan = plan_routes("n1", RACKS, BLOCKS[:3], "crosssubnet", pools)
    assert devs(plan) == {"10.244.1.0/26": VXLAN_DEV, "10.244.3.0/26": VXLAN_DEV, "10.244.4.0/26": VXLAN_DEV}


def test_unpublished_subnets_encapsulate_crosssubnet_and_route_never_directly():
    """Before an agent published its subnet: CrossSubnet wraps (always works), Never
    routes on the segment (a one-segment lab of older agents keeps working)."""
    nodes = [racked("n1", 1, 0), racked("n3", 3, 0, published=False)]
    blocks = [block("10.244.3.0/26", "n3")]
    assert devs(plan_routes("n1", nodes, blocks, "none", [pool("10.244.0.0/16", "CrossSubnet")])) == \
        {"10.244.3.0/26": VXLAN_DEV}
    assert devs(plan_routes("n1", nodes, blocks, "none", [pool("10.244.0.0/16", "Never")])) == \
        {"10.244.3.0/26": "direct"}


def test_mtu_accounts_for_the_outer_header_family():
    assert VXLAN_OVERHEAD == {4: 50, 6: 70}
    assert pod_mtu(1500, True) == 1450 and pod_mtu(1500, True, 6) == 1430 and pod_mtu(1500, False) == 1500


MODES = st.sampled_from(["Always", "CrossSubnet", "Never"])


@given(MODES, st.sampled_from([True, False, None]), st.sampled_from(["static", "bgp"]))
def test_crossing_table(mode: str, same: bool | None, routing: str):
    c = crossing(mode, same, routing)
    if mode == "Always":
        assert c is Crossing.ENCAP
    elif mode == "CrossSubnet":
        assert c is (Crossing.DIRECT if same is True else Crossing.ENCAP)
    elif routing == "bgp":
        assert c is Crossing.BGP
    else:
        assert c is (Crossing.UNROUTABLE if same is False else Crossing.DIRECT)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 200)), min_size=1, max_size=12,
                unique_by=lambda t: t[1]),
       MODES, st.integers(1, 4))
def test_every_foreign_block_is_planned_exactly_once_and_wrapped_only_when_needed(owned, mode, me):
    """Every block of another node is either routed once or listed unroutable once; a route
    is VXLAN exactly when the mode wants it for that pair of racks."""
    nodes = [racked(f"n{i}", i, (i - 1) % 2) for i in range(1, 5)]
    blocks = [block(f"10.244.{j}.0/26", f"n{o + 1}") for o, j in owned]
    plan = plan_routes(f"n{me}", nodes, blocks, "none", [pool("10.244.0.0/16", mode)])
    planned = [r.dst for r in plan.routes + plan.unroutable]
    assert sorted(planned) == sorted(f"10.244.{j}.0/26" for o, j in owned if o + 1 != me)
    for r in plan.routes:
        owner_rack = (int(r.node[1:]) - 1) % 2
        cross = owner_rack != (me - 1) % 2
        assert (r.dev == VXLAN_DEV) == (mode == "Always" or (mode == "CrossSubnet" and cross))
        assert not (mode == "Never" and cross)


@given(st.integers(0, 2**24 - 1), st.integers(16, 30), st.integers(0, 2**24 - 1))
def test_same_subnet_is_the_interface_network(a: int, plen: int, b: int):
    x = ipaddress.IPv4Interface((ipaddress.IPv4Address((10 << 24) | a), plen))
    y = ipaddress.IPv4Interface((ipaddress.IPv4Address((10 << 24) | b), plen))
    assert same_subnet(str(x), str(y)) == (x.network == y.network)
    assert same_subnet(str(x), None) is None and same_subnet("bogus", str(y)) is None
