"""How full a pool is, for `podnet get ippools` and `podnet ipam show`. Read-only."""
from __future__ import annotations

from dataclasses import dataclass

from podnet.datastore.interface import Datastore
from podnet.ipam.blocks import KIND, Block
from podnet.ipam.cidr import CidrError, reserved_ordinals
from podnet.ipam.pools import pool_from_resource


@dataclass(frozen=True)
class BlockUsage:
    cidr: str
    pool: str
    node: str  # "" when no node owns it
    used: int
    free: int
    borrowed: int  # allocations made by other nodes


def block_usage(store: Datastore) -> list[BlockUsage]:
    pools = {}
    for r in store.list("IPPool").items:
        try:
            pools[r.name] = pool_from_resource(r)
        except CidrError:
            pass
    out = []
    for r in store.list(KIND).items:
        b = Block.from_resource(r)
        p = pools.get(b.pool)
        reserved = reserved_ordinals(p.cidr, b.cidr) if p else frozenset()
        borrowed = sum(1 for hd in b.allocations.values() if not hd.startswith(b.node + "/"))
        out.append(BlockUsage(str(b.cidr), b.pool, b.node, len(b.allocations),
                              b.free_count(reserved), borrowed))
    out.sort(key=lambda u: (u.pool, u.cidr))
    return out


def pool_usage(store: Datastore, pool: str) -> tuple[int, int]:
    """(used, free) addresses of the pool named `pool`; free counts unclaimed blocks too.
    A pool that does not exist or is broken gives (0, 0)."""
    try:
        p = pool_from_resource(store.get("IPPool", "", pool))
    except Exception:
        return (0, 0)
    used = sum(len(b.allocations) for b in (Block.from_resource(r) for r in store.list(KIND).items)
               if b.pool == pool)
    usable = p.cidr.num_addresses - len(reserved_ordinals(p.cidr, p.cidr))
    return used, max(usable - used, 0)
