"""`podnet ipam show`: every pool with its used/free counts, then every block, its node
and usage (Calico's `calicoctl ipam show --show-blocks`). `podnet ipam release-empty`
hands back empty blocks now, grace period or not. `podnet ipam check` compares the blocks
with the Pods and Nodes (leaked, missing; `calicoctl ipam check`), exit 1 when something
is leaked or missing; `podnet ipam release IP...` frees addresses (`calicoctl ipam
release`). Also adds the IPAM section (usage, blocks) to `podnet describe ippool`. Thin:
podnet.ipam does the work."""
from __future__ import annotations

import argparse
import ipaddress
import json
import math
from typing import Any

from podnet.api.objects import Resource
from podnet.cli.describe import DESCRIBERS

from podnet.cli.context import open_store
from podnet.cli.errors import UserError
from podnet.cli.output import table
from podnet.ipam.audit import LAB_NETWORK, ORPHANED, Report


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
    chk = s.add_parser("check", help="compare IPAM with the cluster: leaked addresses, pods whose "
                                     "address is missing, blocks of missing nodes; exit 1 when "
                                     "something is leaked or missing")
    chk.add_argument("--network", default=LAB_NETWORK,
                     help=f"the CNI network whose allocations are judged (default {LAB_NETWORK})")
    chk.add_argument("-o", "--output", choices=("table", "json"), default="table")
    chk.set_defaults(func=cmd_check)
    free = s.add_parser("release", help="free the given addresses (refused for a live pod's "
                                        "address unless --force)")
    free.add_argument("ips", nargs="+", metavar="IP")
    free.add_argument("--force", action="store_true", help="free a live pod's address too")
    free.add_argument("--network", default=LAB_NETWORK,
                      help=f"the CNI network whose pods count as live (default {LAB_NETWORK})")
    free.set_defaults(func=cmd_release)
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


def _audit(store: Any, network: str) -> Report:
    from podnet.ipam.allocator import Allocator, IpamError
    from podnet.ipam.audit import audit
    try:
        blocks = Allocator(store, "").blocks()
    except IpamError as e:
        raise UserError(str(e)) from None
    return audit(blocks, store.list("Pod").items, store.list("Node").items, network)


def cmd_check(args: argparse.Namespace) -> int:
    from podnet.ipam.audit import LEAKED, UNKNOWN
    store = open_store(args)
    try:
        report = _audit(store, args.network)
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.clean else 1
    sections: list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]] = [
        ("LEAKED ADDRESSES", ("ADDRESS", "BLOCK", "HANDLE", "WHY"),
         [(a.address, a.block, a.handle, a.reason) for a in report.of(LEAKED)]),
        ("MISSING POD ADDRESSES", ("POD", "NODE", "ADDRESS", "WHY"),
         [(m.pod, m.node, m.address, m.reason) for m in report.missing]),
        ("ADDRESSES OF UNKNOWN OWNER", ("ADDRESS", "BLOCK", "HANDLE"),
         [(a.address, a.block, a.handle) for a in report.of(UNKNOWN)]),
        ("BLOCKS", ("BLOCK", "POOL", "NODE", "PROBLEM"),
         [(b.block, b.pool, b.node or "<none>",
           "node does not exist" if b.problem == ORPHANED else b.problem) for b in report.blocks]),
    ]
    for title, headers, rows in sections:
        if rows:
            print(f"{title} ({len(rows)})")
            print(table(headers, rows))
            print()
    print(("ok: " if report.clean else "PROBLEMS: ") + report.summary())
    if report.of(LEAKED):
        print("free leaked addresses with `podnet ipam release IP...`")
    return 0 if report.clean else 1


def cmd_release(args: argparse.Namespace) -> int:
    from podnet.ipam.allocator import Allocator, IpamError
    from podnet.ipam.audit import LIVE
    wanted = []
    for text in args.ips:
        try:
            wanted.append(ipaddress.ip_address(text))
        except ValueError:
            raise UserError(f"{text!r} is not an IP address") from None
    store = open_store(args)
    try:
        held = {ipaddress.ip_address(a.address): a for a in _audit(store, args.network).allocations}
        live = [held[ip] for ip in wanted if ip in held and held[ip].status == LIVE]
        if live and not args.force:
            raise UserError("refusing to release addresses of live pods (nothing released): "
                            + ", ".join(f"{a.address} ({a.reason})" for a in live)
                            + "; --force frees them anyway")
        # Never free what is being handed out: an infinite grace keeps every block too.
        allocator = Allocator(store, "", release_grace=math.inf)
        try:
            freed = set(allocator.release_held({ip: held[ip].handle for ip in wanted if ip in held}))
        except IpamError as e:
            raise UserError(str(e)) from None
    finally:
        store.close()
    for ip in wanted:
        if ip not in held:
            print(f"{ip} is not allocated")
        elif ip in freed:
            print(f"released {ip} (was {held[ip].handle})")
        else:
            print(f"kept {ip}: {held[ip].handle} no longer holds it (released or reused meanwhile)")
    return 0
