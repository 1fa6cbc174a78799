"""A deleted node's IPAM handed back (`podnet node delete`, issue 17 §4): the real allocator
over a real SQLite store in a temp dir."""
from __future__ import annotations

from podnet.api.objects import from_dict
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.blocks import Handle
from podnet.ipam.node_release import plan, release_node


def pool(store):
    store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                            "spec": {"cidr": "10.9.0.0/24", "blockSize": 28}}))


def take(store, node, cid, block_of=None):
    """An address for pod `cid` on `node` (from `block_of`'s block: borrowed, when given)."""
    h = Handle(node, "podnet", cid, "eth0")
    if block_of is None:
        [a] = Allocator(store, node).assign(Request(h, (4,)))
    else:
        [a] = Allocator(store, node).assign(Request(h, (4,), requested={4: block_of}))
    return a


def by_node(store):
    return {b.name: (str(b.cidr), b.node, sorted(b.allocations.values())) for b in Allocator(store, "").blocks()}


def test_the_nodes_addresses_go_its_empty_blocks_go_a_borrowed_block_loses_its_affinity(store):
    pool(store)
    a1 = take(store, "n1", "p1")
    take(store, "n2", "q1")
    b2 = take(store, "n2", "q2")
    # n1's pod borrows an address from n2's block (strict affinity off)
    borrowed_ip = b2.address + 5
    take(store, "n1", "borrower", block_of=borrowed_ip)
    before = by_node(store)
    assert {v[1] for v in before.values()} == {"n1", "n2"}

    p = plan(Allocator(store, "").blocks(), "n2")
    assert sorted(str(a) for a in p.held) == sorted([str(b2.address), str(b2.address - 1)])
    assert [b.node for b in p.delete] == [] and [str(b.cidr) for b in p.unaffine] == [b2.block]

    rel = release_node(store, "n2")
    assert sorted(rel.freed) == sorted([str(b2.address), str(b2.address - 1)])
    assert rel.unaffined == (b2.block,) and rel.deleted == ()
    after = by_node(store)
    left = [v for v in after.values() if v[0] == b2.block]
    assert left == [(b2.block, "", ["n1/podnet/borrower/eth0"])]  # kept for its borrower, no affinity
    assert [v for v in after.values() if v[0] == a1.block] == [(a1.block, "n1", ["n1/podnet/p1/eth0"])]
    assert not [v for v in after.values() if v[1] == "n2"]
    # nothing of n2's is left to release: a second run changes nothing
    assert release_node(store, "n2") == type(rel)((), (), ())


def test_an_empty_block_of_the_node_is_deleted(store):
    pool(store)
    take(store, "n1", "p1")
    a = take(store, "n3", "gone")  # a leaked address of the node (its CNI DEL never ran)
    rel = release_node(store, "n3")
    assert rel.freed == (str(a.address),) and rel.deleted == (a.block,)
    assert [v[1] for v in by_node(store).values()] == ["n1"]
