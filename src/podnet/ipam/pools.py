"""Which IPPools may serve an allocation: family, enabled, node selector, config filter. Pure.

A pool is usable by a node when it is not disabled, its nodeSelector matches the node's
labels, and (when the CNI config names pools with `ipv4_pools`/`ipv6_pools`) it is one of
those, named by pool name or by CIDR as Calico allows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from podnet.api.objects import IPPool, Resource
from podnet.ipam.cidr import CidrError, Network, check_block_size, parse_network


@dataclass(frozen=True)
class Pool:
    name: str
    cidr: Network
    block_size: int
    disabled: bool = False

    @property
    def version(self) -> int:
        return self.cidr.version


def pool_from_resource(res: Resource) -> Pool:
    """Raises CidrError naming the pool and field when the pool cannot be used."""
    p = res if isinstance(res, IPPool) else IPPool(res.raw)
    net = parse_network(p.cidr, f"IPPool {p.name}: spec.cidr")
    try:
        bs = p.block_size
    except (TypeError, ValueError):
        raise CidrError(f"IPPool {p.name}: spec.blockSize={p.spec.get('blockSize')!r} is not an integer") from None
    try:
        check_block_size(net, bs)
    except CidrError as e:
        raise CidrError(f"IPPool {p.name}: spec.{e}") from None
    return Pool(p.name, net, bs, p.disabled)


def usable_pools(pools: Iterable[Resource], version: int, node_labels: Mapping[str, str] | None,
                 wanted: Sequence[str] = ()) -> list[Pool]:
    """Enabled pools of `version` for this node, in the order of `wanted` when given, else by
    name. `node_labels` None means the node object is unknown: selectors other than all()
    then do not match (a pool restricted to some nodes must not leak to unknown ones)."""
    out: list[Pool] = []
    for res in pools:
        ip = res if isinstance(res, IPPool) else IPPool(res.raw)
        try:
            pool = pool_from_resource(ip)
        except CidrError:
            continue  # a broken pool serves nobody; `podnet get ippools` shows why
        if pool.version != version or pool.disabled or not ip.for_workloads:
            continue
        try:
            sel = ip.node_selector
        except ValueError:
            continue
        if not sel.is_everything and (node_labels is None or not sel.matches(node_labels)):
            continue
        if wanted and not any(w == pool.name or _same_cidr(w, pool.cidr) for w in wanted):
            continue
        out.append(pool)
    if wanted:
        order = {w: i for i, w in enumerate(wanted)}
        out.sort(key=lambda p: min(order.get(p.name, 1 << 30), order.get(str(p.cidr), 1 << 30)))
    else:
        out.sort(key=lambda p: p.name)
    return out


def _same_cidr(text: str, net: Network) -> bool:
    try:
        return parse_network(text) == net
    except CidrError:
        return False
