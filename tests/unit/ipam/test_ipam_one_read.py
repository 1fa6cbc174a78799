"""One ADD reads pools and blocks once (`Allocator.one_read`), and a stale read still
cannot hand out an address twice: the write is a CAS and a lost CAS rereads."""
from __future__ import annotations

from podnet.api.objects import from_dict
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.blocks import Block, Handle


class CountingStore:
    """The real SQLite store, counting list() per kind."""

    def __init__(self, inner):
        self.inner = inner
        self.lists: dict[str, int] = {}

    def list(self, kind, *a, **kw):
        self.lists[kind] = self.lists.get(kind, 0) + 1
        return self.inner.list(kind, *a, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _pools(store):
    for name, cidr, bs in (("v4", "10.81.0.0/16", 26), ("v6", "fd00:81::/112", 122)):
        store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                                "spec": {"cidr": cidr, "blockSize": bs}}))


def test_dual_add_lists_pools_and_blocks_once(store):
    _pools(store)
    Allocator(store, "n2").assign(Request(Handle("n2", "k8s", "x", "eth0"), (4, 6)))
    cs = CountingStore(store)
    a = Allocator(cs, "n1")
    h = Handle("n1", "k8s", "c1", "eth0")
    with a.one_read():
        assert a.addresses_of(h) == []
        fams = tuple(v for v in (4, 6) if a.pools(v))
        got = a.assign(Request(h, fams))
    assert cs.lists == {"IPPool": 1, "IPAMBlock": 1}
    assert sorted(g.address.version for g in got) == [4, 6]
    assert sorted(map(str, a.addresses_of(h))) == sorted(str(g.address) for g in got)
    # Outside one_read every call reads afresh, as before.
    a.pools(4), a.pools(4)
    assert cs.lists["IPPool"] == 3


def test_stale_read_loses_the_cas_and_rereads(store):
    _pools(store)
    a, b = Allocator(store, "n1"), Allocator(store, "n1")
    a.assign(Request(Handle("n1", "k8s", "first", "eth0"), (4,)))
    with a.one_read():
        a.blocks()  # a's view of the node's block, before b writes
        other = b.assign(Request(Handle("n1", "k8s", "other", "eth0"), (4,)))[0]
        mine = a.assign(Request(Handle("n1", "k8s", "mine", "eth0"), (4,)))[0]
    assert mine.address != other.address
    blocks = [Block.from_resource(r) for r in store.list("IPAMBlock").items]
    held = [h for blk in blocks for h in blk.allocations.values()]
    assert sorted(held) == sorted(f"n1/k8s/{c}/eth0" for c in ("first", "other", "mine"))
