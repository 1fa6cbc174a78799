"""`podnet ipam show`: every pool with its used/free counts, then every block, its node
and usage (Calico's `calicoctl ipam show --show-blocks`). `podnet ipam release-empty`
hands back empty blocks now, grace period or not. Also adds the IPAM section (usage,
blocks) to `podnet describe ippool`. Thin: podnet.ipam does the work."""
from __future__ import annotations

import argparse
import json
from typing import Any

from podnet.api.objects import Resource
from podnet.cli.describe import DESCRIBERS

from podnet.cli.context import open_store
from podnet.cli.errors import UserError
from podnet.cli.output import table


def describe_pool(store: Any, obj: Resource) -> list[str]:
    """The IPAM section of `podnet describe ippool <name>`: usage and blocks."""
    from podnet.ipam.usage import block_usage, pool_usage
    used, free = pool_usage(store, obj.name)
    lines = [f"{'Used:':<18}{used}", f"{'Free:':<18}{free}"]
    blocks = [b for b in block_usage(store) if b.pool == obj.name]
    if not blocks:
        return lines + [f"{'Blocks:':<18}<none>"]
    lines.append("Blocks:")
    for b in blocks:
        lines.append(f"  {b.cidr:<22} node={b.node or '<none>'} used={b.used} free={b.free}"
                     + (f" borrowed={b.borrowed}" if b.borrowed else ""))
    return lines


def register(sub: argparse._SubParsersAction) -> None:
    DESCRIBERS.setdefault("IPPool", describe_pool)
    p = sub.add_parser("ipam", help="IP address management: pools, blocks, usage")
    s = p.add_subparsers(dest="ipam_command", metavar="SUBCOMMAND")
    show = s.add_parser("show", help="pools with used/free counts, blocks with their node and usage")
    show.add_argument("--node", help="only blocks affine to this node")
    show.add_argument("-o", "--output", choices=("table", "json"), default="table")
    show.set_defaults(func=cmd_show)
    rel = s.add_parser("release-empty", help="give this node's empty blocks back to their pools now")
    rel.add_argument("node")
    rel.set_defaults(func=cmd_release_empty)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cmd_show(args: argparse.Namespace) -> int:
    from podnet.ipam.usage import block_usage, pool_usage
    store = open_store(args)
    try:
        pools = store.list("IPPool").items
        blocks = [b for b in block_usage(store) if not args.node or b.node == args.node]
        pool_rows = []
        for p in pools:
            used, free = pool_usage(store, p.name)
            pool_rows.append((p.name, str(p.spec.get("cidr", "")), used, free,
                              "true" if p.spec.get("disabled") else "false"))
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps({
            "pools": [dict(zip(("name", "cidr", "used", "free", "disabled"), r)) for r in pool_rows],
            "blocks": [b.__dict__ for b in blocks]}, indent=2))
        return 0
    if not pool_rows:
        raise UserError("no IPPools: create one with `podnet apply -f pool.yaml` (kind IPPool)")
    print(table(("POOL", "CIDR", "USED", "FREE", "DISABLED"),
                [(n, c, str(u), str(f), d) for n, c, u, f, d in pool_rows]))
    print()
    if not blocks:
        print("no blocks claimed yet")
        return 0
    print(table(("BLOCK", "POOL", "NODE", "USED", "FREE", "BORROWED"),
                [(b.cidr, b.pool, b.node or "<none>", str(b.used), str(b.free), str(b.borrowed))
                 for b in blocks]))
    return 0


def cmd_release_empty(args: argparse.Namespace) -> int:
    from podnet.ipam.allocator import Allocator
    store = open_store(args)
    try:
        released = Allocator(store, args.node, release_grace=0).release_empty_blocks()
    finally:
        store.close()
    for cidr in released:
        print(f"released {cidr}")
    if not released:
        print(f"node {args.node} holds no empty block")
    return 0
