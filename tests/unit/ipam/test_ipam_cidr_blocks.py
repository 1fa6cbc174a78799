"""Block arithmetic and block values: pure, no store."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.ipam.blocks import Block, Handle, new_block
from podnet.ipam.cidr import (CidrError, address_at, block_count, block_index, block_name,
                              check_block_size, nth_block, ordinal_of, parse_network,
                              reserved_ordinals)


@st.composite
def pool_and_size(draw):
    v6 = draw(st.booleans())
    bits = 128 if v6 else 32
    prefix = draw(st.integers(min_value=bits - 16, max_value=bits))
    base = draw(st.integers(min_value=0, max_value=(1 << bits) - 1))
    cls = ipaddress.IPv6Network if v6 else ipaddress.IPv4Network
    net = cls((base >> (bits - prefix) << (bits - prefix), prefix))
    size = draw(st.integers(min_value=prefix, max_value=min(bits, prefix + 10)))
    return net, size


@given(pool_and_size(), st.data())
def test_blocks_tile_the_pool(ps, data):
    pool, size = ps
    n = block_count(pool, size)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    blk = nth_block(pool, size, i)
    assert blk.prefixlen == size and blk.subnet_of(pool)
    o = data.draw(st.integers(min_value=0, max_value=blk.num_addresses - 1))
    ip = address_at(blk, o)
    assert ordinal_of(blk, ip) == o
    assert block_index(pool, size, ip) == i
    if i + 1 < n:
        assert int(nth_block(pool, size, i + 1).network_address) == int(blk.broadcast_address) + 1


@given(pool_and_size())
def test_reserved_only_pool_edges(ps):
    pool, size = ps
    first, last = nth_block(pool, size, 0), nth_block(pool, size, block_count(pool, size) - 1)
    r_first = reserved_ordinals(pool, first)
    if pool.num_addresses > 1:
        assert 0 in r_first
    if pool.version == 4 and pool.num_addresses > 2:
        assert last.num_addresses - 1 in reserved_ordinals(pool, last)
    if block_count(pool, size) > 2:
        assert reserved_ordinals(pool, nth_block(pool, size, 1)) == frozenset()


def test_bad_input_names_the_value():
    with pytest.raises(CidrError, match="10.0.0.1/24"):
        parse_network("10.0.0.1/24")
    with pytest.raises(CidrError, match="blockSize=20"):
        check_block_size(parse_network("10.0.0.0/24"), 20)
    with pytest.raises(CidrError, match="not a valid CIDR"):
        parse_network("banana")


def test_block_names_are_calico_style_and_unique():
    assert block_name(parse_network("10.244.0.64/26")) == "10-244-0-64-26"
    assert block_name(parse_network("fd00:10:244::40/122")) == "fd00-10-244--40-122"


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=70))
def test_allocate_release_roundtrip(owners):
    pool = parse_network("10.0.0.0/26")
    b = new_block(pool, "p", "n1")
    reserved = reserved_ordinals(pool, pool)
    taken = []
    for who in owners:
        o = b.first_free(reserved)
        if o is None:
            break
        b = b.allocate(o, who)
        taken.append((o, who))
    ords = [o for o, _ in taken]
    assert len(set(ords)) == len(ords) and 0 not in ords and 63 not in ords
    assert b.free_count(reserved) == 62 - len(taken)
    again = Block.from_resource(b.to_resource())
    assert again.allocations == b.allocations and again.node == "n1" and again.cidr == pool
    b2, freed = b.release(lambda h: h == "a", now=5.0)
    assert sorted(freed) == sorted(address_at(pool, o) for o, w in taken if w == "a")
    assert all(h != "a" for h in b2.allocations.values())
    b3, _ = b2.release(lambda h: True, now=7.0)
    assert not b3.allocations and b3.empty_since == (5.0 if not b2.allocations else 7.0)
    assert b3.allocate(1, "x").empty_since is None


def test_allocate_taken_ordinal_refused():
    b = new_block(parse_network("10.0.0.0/30"), "p", "n").allocate(1, "x")
    with pytest.raises(ValueError, match="taken"):
        b.allocate(1, "y")


def test_handle_roundtrip():
    h = Handle("node-1", "k8s-pod-network", "abc.123_x", "eth0")
    assert Handle.parse(str(h)) == h
    assert Handle.parse("weird").node == ""
