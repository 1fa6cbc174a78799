"""A released pod address rests before it is handed out again (issue 17 §1), so a node
still routing to the old pod never reaches a new one; a block with nothing else free
still allocates (the address released longest ago)."""
from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from podnet.api.objects import from_dict
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.blocks import QUARANTINE, Block, Handle, new_block


def h(cid):
    return Handle("n1", "k8s", cid, "eth0")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_a_released_address_rests_then_returns(store):
    store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                            "spec": {"cidr": "10.9.0.0/24", "blockSize": 28}}))
    clock = Clock()
    a = Allocator(store, "n1", clock=clock)
    [first] = a.assign(Request(h("a"), (4,)))
    a.release(h("a"))
    [second] = a.assign(Request(h("b"), (4,)))
    assert second.address != first.address  # the first rests: the next free one is used
    block = Block.from_resource(store.get("IPAMBlock", "", a.blocks()[0].name))
    assert dict(block.released) == {int(first.address) - int(block.cidr.network_address): clock.t}
    clock.t += QUARANTINE
    a.release(h("b"))  # now `second` rests, `first` has rested long enough
    [third] = a.assign(Request(h("c"), (4,)))
    assert third.address == first.address


def test_quarantine_is_pure_block_math():
    b = new_block(ipaddress.ip_network("10.0.0.0/29"), "v4", "n1")
    for o in range(3):
        b = b.allocate(o, f"h{o}")
    b, freed = b.release(lambda hd: hd == "h1", now=100.0)
    assert [str(x) for x in freed] == ["10.0.0.1"] and dict(b.released) == {1: 100.0}
    assert b.first_free(now=101.0) == 3  # 1 rests
    assert b.first_free(now=100.0 + QUARANTINE) == 1  # rested long enough
    assert b.first_free() == 1  # no clock, no quarantine (reporting)
    assert Block.from_resource(b.to_resource()).released == {1: 100.0}
    b = b.allocate(1, "again")
    assert 1 not in b.released


@given(st.lists(st.integers(0, 7), min_size=1, max_size=30))
def test_a_block_with_a_free_address_never_refuses(order):
    """Whatever was released when, a free address is found, and a fresh one is preferred."""
    b = new_block(ipaddress.ip_network("10.0.0.0/29"), "v4", "n1")
    now = 0.0
    for o in order:
        now += 1.0
        if o in b.allocations:
            b, _ = b.release(lambda hd, o=o: hd == f"h{o}", now)
        else:
            b = b.allocate(o, f"h{o}")
    got = b.first_free(now=now)
    free = [o for o in range(8) if o not in b.allocations]
    assert (got is None) == (not free)
    fresh = [o for o in free if o not in b.released or now - b.released[o] >= QUARANTINE]
    if fresh:
        assert got == min(fresh)
    elif free:
        assert got == min(free, key=lambda o: (b.released[o], o))
