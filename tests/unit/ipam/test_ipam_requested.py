"""Requested addresses (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips) on a real SQLite
store: taken from the block that holds them, never from their holder."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.ipam.allocator import (Allocator, PoolsExhausted, Request, RequestedInUse,
                                   RequestedNotUsable)
from podnet.ipam.blocks import Handle
from podnet.ipam.cidr import block_containing, parse_network

from test_ipam_allocator import make_pool


def h(node, cid):
    return Handle(node, "k8s", cid, "eth0")


def ip(text):
    return ipaddress.ip_address(text)


def ask(alloc, cid, *addrs, versions=None, **kw):
    req = {a.version: a for a in map(ip, addrs)}
    return alloc.assign(Request(h(alloc.node, cid), versions or tuple(sorted(req)), requested=req, **kw))


def test_requested_address_claims_its_block_for_the_node(store):
    store.create(make_pool("v4", "10.244.0.0/16"))
    a = Allocator(store, "n1")
    got = ask(a, "c1", "10.244.7.200")
    assert [str(g.address) for g in got] == ["10.244.7.200"] and got[0].block == "10.244.7.192/26"
    assert not got[0].borrowed
    assert {(str(b.cidr), b.node) for b in a.blocks()} == {("10.244.7.192/26", "n1")}
    # the node's next automatic address comes from that block too
    nxt = a.assign(Request(h("n1", "c2"), (4,)))[0]
    assert str(nxt.address) == "10.244.7.192"
    assert [str(x) for x in a.release(h("n1", "c1"))] == ["10.244.7.200"]


def test_dual_stack_with_one_family_requested(store):
    store.create(make_pool("v4", "10.244.0.0/16"))
    store.create(make_pool("v6", "fd00:10:244::/56"))
    a = Allocator(store, "n1")
    got = ask(a, "c1", "fd00:10:244::abc", versions=(4, 6))
    assert got[0].address.version == 4 and str(got[1].address) == "fd00:10:244::abc"


def test_address_in_use_is_refused_and_names_its_holder(store):
    store.create(make_pool("v4", "10.244.0.0/16"))
    a1, a2 = Allocator(store, "n1"), Allocator(store, "n2")
    ask(a1, "c1", "10.244.0.9")
    with pytest.raises(RequestedInUse, match="10.244.0.9 is already allocated to n1/k8s/c1/eth0") as e:
        ask(a2, "c2", "10.244.0.9")
    assert e.value.code == 11
    # after the holder's DEL the address can be had, borrowed from n1's block
    a1.release(h("n1", "c1"))
    got = ask(a2, "c2", "10.244.0.9")
    assert got[0].borrowed and str(got[0].address) == "10.244.0.9"


def test_strict_affinity_refuses_another_nodes_block(store):
    store.create(make_pool("v4", "10.244.0.0/16"))
    a1, a2 = Allocator(store, "n1"), Allocator(store, "n2")
    ask(a1, "c1", "10.244.0.9")
    with pytest.raises(RequestedNotUsable, match="block 10.244.0.0/26 of node n1; strict affinity"):
        ask(a2, "c2", "10.244.0.10", strict_affinity=True)
    assert a2.addresses_of(h("n2", "c2")) == []


@pytest.mark.parametrize("addr, pools, wanted, why", [
    ("10.9.0.1", [("v4", "10.244.0.0/16", {})], (), "in no enabled IPv4 IPPool that serves node 'n1' "
                                                      "(usable: v4 10.244.0.0/16)"),
    ("10.244.0.1", [("v4", "10.244.0.0/16", {"disabled": True})], (), "usable: none"),
    ("10.244.0.1", [("v4", "10.244.0.0/16", {}), ("b", "10.245.0.0/16", {})], ("b",), "among ['b']"),
    ("10.244.0.0", [("v4", "10.244.0.0/16", {})], (), "network or broadcast address of IPPool v4"),
    ("10.244.255.255", [("v4", "10.244.0.0/16", {})], (), "network or broadcast address"),
])
def test_addresses_outside_what_the_pools_allow(store, addr, pools, wanted, why):
    for name, cidr, spec in pools:
        store.create(make_pool(name, cidr, **spec))
    a = Allocator(store, "n1")
    with pytest.raises(RequestedNotUsable, match=why.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")) as e:
        a.assign(Request(h("n1", "c"), (4,), pools={4: wanted}, requested={4: ip(addr)}))
    assert e.value.code == 7 and a.blocks() == []


def test_a_requested_address_in_a_full_pool_still_works_when_free(store):
    store.create(make_pool("tiny", "10.9.0.0/29", blockSize=30))
    a = Allocator(store, "n1")
    ask(a, "c0", "10.9.0.5")
    for i in range(5):  # 8 addresses, less the pool's network and broadcast
        a.assign(Request(h("n1", f"c{i + 1}"), (4,)))
    with pytest.raises(PoolsExhausted):
        a.assign(Request(h("n1", "c9"), (4,)))
    a.release(h("n1", "c0"))
    assert str(ask(a, "c0", "10.9.0.5")[0].address) == "10.9.0.5"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 254), min_size=1, max_size=12, unique=True), st.data())
def test_requested_and_automatic_addresses_never_collide(store, wanted, data):
    """Requested addresses interleaved with automatic ones, from two nodes: every address
    is given once, requested ones exactly as asked, each inside the block recorded."""
    for r in store.list("IPAMBlock").items:
        store.delete("IPAMBlock", "", r.name)
    if not store.list("IPPool").items:
        store.create(make_pool("p", "10.7.0.0/24", blockSize=28))
    allocs = [Allocator(store, "n1"), Allocator(store, "n2")]
    got = []
    for i, last in enumerate(wanted):
        a = allocs[data.draw(st.integers(0, 1))]
        if data.draw(st.booleans()):
            try:
                g = ask(a, f"r{i}", f"10.7.0.{last}")[0]
            except RequestedInUse:
                assert any(str(x.address) == f"10.7.0.{last}" for x in got)
                continue
            assert str(g.address) == f"10.7.0.{last}"
        else:
            g = a.assign(Request(h(a.node, f"a{i}"), (4,)))[0]
        assert g.address in parse_network(g.block)
        assert parse_network(g.block) == block_containing(parse_network("10.7.0.0/24"), 28, g.address)
        got.append(g)
    addrs = [g.address for g in got]
    assert len(addrs) == len(set(addrs))
