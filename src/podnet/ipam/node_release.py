"""A deleted node's IPAM handed back (`podnet node delete`, issue 17 §4), as Calico's node
controller does when a node goes: every address the node's handles still hold is freed
(its pods are gone: the drain ended them and their CNI DEL normally freed them already),
then each block affine to the node is deleted when empty or, when pods of other nodes
borrowed addresses in it, kept without affinity until those are released too. Every write
is a compare-and-swap on the block's revision; `plan` is the pure decision.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from podnet.api.objects import Resource
from podnet.datastore.interface import Conflict, Datastore, NotFound
from podnet.datastore.util import update_with_retry
from podnet.ipam.allocator import Allocator
from podnet.ipam.blocks import KIND, Block, Handle
from podnet.ipam.cidr import Address, address_at

ATTEMPTS = 20


@dataclass(frozen=True)
class NodePlan:
    held: dict[Address, str]  # the node's own addresses (handle node == it), to free
    delete: tuple[Block, ...]  # its blocks with nothing else in them
    unaffine: tuple[Block, ...]  # its blocks still holding other nodes' (borrowed) addresses


@dataclass(frozen=True)
class NodeRelease:
    freed: tuple[str, ...]
    deleted: tuple[str, ...]  # block CIDRs
    unaffined: tuple[str, ...]


def plan(blocks: list[Block], node: str) -> NodePlan:
    """What releasing `node` means for these blocks. Pure."""
    held = {address_at(b.cidr, o): h for b in blocks for o, h in b.allocations.items()
            if Handle.parse(h).node == node}
    mine = [b for b in blocks if b.node == node]
    others = {b.name: [h for h in b.allocations.values() if Handle.parse(h).node != node] for b in mine}
    return NodePlan(held, tuple(b for b in mine if not others[b.name]),
                    tuple(b for b in mine if others[b.name]))


def release_node(store: Datastore, node: str) -> NodeRelease:
    """Free the node's addresses, then delete or unaffine its blocks (read again after the
    release, so a block's revision is the one the release left)."""
    if not node:
        raise ValueError("release_node: no node name")
    allocator = Allocator(store, node)
    freed = allocator.release_held(plan(allocator.blocks(), node).held)
    after = plan(Allocator(store, node).blocks(), node)
    deleted, unaffined = [], []
    for b in after.delete:
        try:
            store.delete(KIND, "", b.name, b.revision)
            deleted.append(str(b.cidr))
        except (Conflict, NotFound):
            pass  # changed meanwhile (a borrow): the next `podnet ipam check` shows it
    for b in after.unaffine:
        def drop_affinity(cur: Resource) -> Resource | None:
            blk = Block.from_resource(cur)
            return replace(blk, node="").to_resource() if blk.node == node else None
        try:
            update_with_retry(store, KIND, "", b.name, drop_affinity, ATTEMPTS)
            unaffined.append(str(b.cidr))
        except NotFound:
            pass
    return NodeRelease(tuple(str(a) for a in freed), tuple(deleted), tuple(unaffined))
