"""`podnet analyze --with FILE...` and `podnet analyze --diff DIR_A DIR_B`: only the
reachability cells that change, before -> after, with the policy rule behind each
(calc/policy/whatif.py decides; this module loads and prints).

--with: the objects of `-f` (or, without `-f`, of the current lab's store) and the same
with FILE's objects applied on top (an object of the same kind, namespace and name is
replaced). --diff: the objects of DIR_A against those of DIR_B; exit code 1 when
something changes (for CI pipelines). `-o json`: {"changes": [{"from", "to", "port",
"protocol", "family", "before", "after", "cause"}]}.
"""
from __future__ import annotations

import argparse
import json

from podnet.api.objects import ObjectKey, Resource
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import assign_ips
from podnet.calc.policy.whatif import CellChange, changes
from podnet.cli.errors import UserError

LAB_KINDS = ("Namespace", "Node", "Pod", "NetworkPolicy", "ClusterNetworkPolicy")


def _lab_objects(args: argparse.Namespace) -> list[Resource]:
    from podnet.cli import context
    store = context.open_store(args)
    try:
        return [o for k in LAB_KINDS for o in store.list(k).items]
    finally:
        store.close()


def _raw(paths: list[str]) -> list[Resource]:
    from podnet.cli.policy import load_objects
    return load_objects(paths, addresses=False)


def _overlay(base: list[Resource], top: list[Resource]) -> list[Resource]:
    keys: dict[ObjectKey, Resource] = {o.key: o for o in base}
    keys.update((o.key, o) for o in top)
    return list(keys.values())


def states(args: argparse.Namespace) -> tuple[ClusterState, ClusterState]:
    if args.diff:
        a, b = _raw([args.diff[0]]), _raw([args.diff[1]])
    else:
        a = _raw(args.filename) if args.filename else _lab_objects(args)
        b = _overlay(a, _raw(args.with_))
    return ClusterState.from_objects(assign_ips(a)), ClusterState.from_objects(assign_ips(b))


def cmd_whatif(args: argparse.Namespace) -> int:
    before, after = states(args)
    found: list[CellChange] = []
    for port in args.port or [80]:
        found += changes(before, after, port, args.protocol, args.family, args.namespace, args.to)
    if args.output == "json":
        print(json.dumps({"changes": [c.to_json() for c in found]}, indent=2))
    elif not found:
        print("no reachability changes")
    else:
        for c in found:
            print(f"{c.protocol}/{c.port} IPv{c.family} {c.text()}")
    return 1 if args.diff and found else 0


def check_args(args: argparse.Namespace) -> None:
    if args.diff and (args.with_ or args.filename):
        raise UserError("--diff DIR_A DIR_B compares two sets of manifests: no -f or --with with it")
    if not args.diff and not args.with_ and not args.filename:
        raise UserError("analyze needs -f FILE (or --with FILE against the current lab, or --diff A B)")
