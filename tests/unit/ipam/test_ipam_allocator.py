"""The allocator on a real SQLite store: affinity, claiming, borrowing, release, GC."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.ipam.allocator import Allocator, NoUsablePool, PoolsExhausted, Request
from podnet.ipam.blocks import Block, Handle
from podnet.ipam.usage import pool_usage

from podnet.api.objects import from_dict


def make_pool(name, cidr, **spec):
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                      "spec": {"cidr": cidr, **spec}})


def h(node, cid, ifname="eth0", net="k8s"):
    return Handle(node, net, cid, ifname)


def test_dual_stack_from_node_block(store):
    store.create(make_pool("v4", "10.244.0.0/16"))
    store.create(make_pool("v6", "fd00:10:244::/56"))
    a = Allocator(store, "n1")
    got = a.assign(Request(h("n1", "c1"), (4, 6)))
    assert [g.address.version for g in got] == [4, 6]
    blocks = a.blocks()
    assert {b.node for b in blocks} == {"n1"}
    assert {str(b.cidr.prefixlen) for b in blocks} == {"26", "122"}
    assert got[0].address in blocks[0].cidr or got[0].address in blocks[1].cidr
    assert a.addresses_of(h("n1", "c1")) == [g.address for g in got] or \
        sorted(map(str, a.addresses_of(h("n1", "c1")))) == sorted(str(g.address) for g in got)
    assert sorted(map(str, a.release(h("n1", "c1")))) == sorted(str(g.address) for g in got)
    assert a.release(h("n1", "c1")) == []  # DEL twice: fine
    assert a.release(h("n1", "unknown")) == []


def test_second_block_claimed_then_borrowing_then_exhausted(store):
    # A /28 pool cut into /30 blocks: 4 blocks, 16 addresses, minus network+broadcast.
    store.create(make_pool("tiny", "10.9.0.0/28", blockSize=30))
    a1, a2 = Allocator(store, "n1"), Allocator(store, "n2")
    n1 = [a1.assign(Request(h("n1", f"a{i}"), (4,)))[0] for i in range(5)]
    assert not any(g.borrowed for g in n1)
    assert len({g.block for g in n1}) == 2  # a /30 block holds 3 or 4 of them
    n2 = []
    with pytest.raises(PoolsExhausted, match="no free IPv4 address for node 'n2'"):
        for i in range(20):
            n2.append(a2.assign(Request(h("n2", f"b{i}"), (4,)))[0])
    every = [g.address for g in n1 + n2]
    assert len(every) == 14 == len(set(every))
    pool = ipaddress.ip_network("10.9.0.0/28")
    assert pool.network_address not in every and pool.broadcast_address not in every
    # n2 got its own blocks first, then borrowed from n1's.
    own = {str(b.cidr) for b in a2.blocks() if b.node == "n2"}
    assert all((g.block in own) != g.borrowed for g in n2)
    assert any(g.borrowed for g in n2)
    assert pool_usage(store, "tiny") == (14, 0)


def test_strict_affinity_never_borrows(store):
    store.create(make_pool("tiny", "10.9.0.0/29", blockSize=30))
    a1, a2 = Allocator(store, "n1"), Allocator(store, "n2")
    a1.assign(Request(h("n1", "x"), (4,)))
    got = a2.assign(Request(h("n2", "y"), (4,), strict_affinity=True))  # claims the other block
    assert not got[0].borrowed
    a2.assign(Request(h("n2", "z"), (4,), strict_affinity=True))
    a2.assign(Request(h("n2", "z2"), (4,), strict_affinity=True))  # 3 usable per block
    with pytest.raises(PoolsExhausted, match="strict affinity"):
        a2.assign(Request(h("n2", "w"), (4,), strict_affinity=True))
    assert a2.assign(Request(h("n2", "w"), (4,)))[0].borrowed


def test_disabled_and_missing_pools(store):
    store.create(make_pool("off", "10.8.0.0/24", disabled=True))
    a = Allocator(store, "n1")
    with pytest.raises(NoUsablePool, match="no enabled IPv4 IPPool"):
        a.assign(Request(h("n1", "c"), (4,)))
    with pytest.raises(NoUsablePool, match="IPv6"):
        a.assign(Request(h("n1", "c"), (6,)))


def test_all_or_nothing_when_second_family_fails(store):
    store.create(make_pool("v4", "10.7.0.0/24"))
    a = Allocator(store, "n1")
    with pytest.raises(NoUsablePool):
        a.assign(Request(h("n1", "c"), (4, 6)))
    assert pool_usage(store, "v4")[0] == 0


def test_pool_filter_by_name_or_cidr(store):
    store.create(make_pool("a", "10.1.0.0/24"))
    store.create(make_pool("b", "10.2.0.0/24"))
    a = Allocator(store, "n1")
    assert a.assign(Request(h("n1", "c"), (4,), pools={4: ("b",)}))[0].pool == "b"
    assert a.assign(Request(h("n1", "d"), (4,), pools={4: ("10.1.0.0/24",)}))[0].pool == "a"


def test_node_selector(store):
    store.create(make_pool("zone-a", "10.1.0.0/24", nodeSelector="zone=a"))
    a = Allocator(store, "n1")
    with pytest.raises(NoUsablePool):  # node object unknown: a restricted pool does not serve it
        a.assign(Request(h("n1", "c"), (4,)))
    from podnet.api.objects import from_dict
    store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "Node",
                            "metadata": {"name": "n1", "labels": {"zone": "a"}}}))
    assert Allocator(store, "n1").assign(Request(h("n1", "c"), (4,)))[0].pool == "zone-a"


def test_gc_releases_only_this_nodes_stale_attachments(store):
    store.create(make_pool("p", "10.3.0.0/24"))
    a1, a2 = Allocator(store, "n1"), Allocator(store, "n2")
    for cid in ("keep", "drop1", "drop2"):
        a1.assign(Request(h("n1", cid), (4,)))
    a1.assign(Request(h("n1", "other-net", net="other"), (4,)))
    a2.assign(Request(h("n2", "drop1"), (4,)))
    freed = a1.gc("k8s", {("keep", "eth0")})
    assert len(freed) == 2
    left = sorted(hd for b in a1.blocks() for hd in b.allocations.values())
    assert left == sorted([str(h("n1", "keep")), str(h("n1", "other-net", net="other")),
                           str(h("n2", "drop1"))])


def test_empty_block_released_after_grace(store):
    store.create(make_pool("p", "10.4.0.0/24"))
    now = [1000.0]
    a = Allocator(store, "n1", clock=lambda: now[0], release_grace=60)
    a.assign(Request(h("n1", "c"), (4,)))
    a.release(h("n1", "c"))
    assert len(a.blocks()) == 1 and a.blocks()[0].empty_since == 1000.0
    now[0] += 30
    assert a.release_empty_blocks() == []
    now[0] += 31
    assert a.release_empty_blocks() == ["10.4.0.0/26"] or len(a.blocks()) == 0
    assert a.blocks() == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["n1", "n2", "n3"]), st.booleans()), min_size=1, max_size=40))
def test_invariants_under_random_add_del(store, ops):
    """Whatever the sequence: addresses unique, inside pool, handles match the live set."""
    for r in store.list("IPAMBlock").items:
        store.delete("IPAMBlock", "", r.name)
    if not store.list("IPPool").items:
        store.create(make_pool("p", "10.5.0.0/27", blockSize=29))
    live: dict[Handle, str] = {}
    for i, (node, add) in enumerate(ops):
        a = Allocator(store, node, release_grace=0)
        mine = [k for k in live if k.node == node]
        if add or not mine:
            try:
                got = a.assign(Request(h(node, f"c{i}"), (4,)))
                live[h(node, f"c{i}")] = str(got[0].address)
            except PoolsExhausted:
                assert len(live) == 30
        else:
            assert [str(x) for x in a.release(mine[0])] == [live.pop(mine[0])]
    stored = {hd: str(b.cidr[o]) for b in (Block.from_resource(r) for r in store.list("IPAMBlock").items)
              for o, hd in b.allocations.items()}
    assert stored == {str(k): v for k, v in live.items()}


def test_malformed_block_is_named_not_a_crash(store):
    from podnet.ipam.allocator import CorruptState
    store.create(make_pool("p", "10.6.0.0/24"))
    store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPAMBlock",
                            "metadata": {"name": "junk"}, "spec": {"cidr": "10.6.0.0/26", "allocations": {"x": "y"}}}))
    with pytest.raises(CorruptState, match="IPAMBlock junk"):
        Allocator(store, "n1").assign(Request(h("n1", "c"), (4,)))
