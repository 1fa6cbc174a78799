"""`podnet analyze` (reachability predicted from manifests alone) and `podnet probe` (real
connections in the current lab), both printed as the Kubernetes e2e network-policy tests
print their truth tables: rows = from, columns = to, `.` allowed, `X` denied, `?` untestable.

JSON (`-o json`): {"tables": [{"port", "protocol", "family", "from": [...], "to": [...],
"cells": [{"from", "to", "allowed": true|false|null, "outcome"?}]}]} (docs/design/policy.md).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Any

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.api.errors import ApiError
from podnet.api.objects import Deployment, Pod, Resource
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import TruthTable, assign_ips, pod_label, predict
from podnet.cli.errors import UserError

PROTOCOLS = ("TCP", "UDP", "SCTP")


def _family_ip(pod: Pod, family: int) -> str | None:
    return next((a for a in pod.pod_ips if (":" in a) == (family == 6)), None)


def tables_json(tables: list[tuple[TruthTable, int, dict[tuple[str, str], str]]]) -> dict[str, Any]:
    """The `-o json` document of analyze and probe (the web view serves the same)."""
    out = []
    for t, fam, outcomes in tables:
        d = t.to_json()
        d["family"] = fam
        for c in d["cells"]:
            if (c["from"], c["to"]) in outcomes:
                c["outcome"] = outcomes[(c["from"], c["to"])]
        out.append(d)
    return {"tables": out}


def _print(tables: list[tuple[TruthTable, int, dict[tuple[str, str], str]]], fmt: str,
           staged: list[Any] | None = None) -> None:
    """`staged`: the cells staged policies would change (whatif.CellChange), when any are staged."""
    if fmt == "json":
        doc = tables_json(tables)
        if staged is not None:
            doc["staged"] = [c.to_json() for c in staged]
        print(json.dumps(doc, indent=2))
        return
    refused = False
    for i, (t, fam, outcomes) in enumerate(tables):
        if i:
            print()
        print(f"{t.protocol}/{t.port} IPv{fam}:")
        # A refused connection reached the pod (policy drops, it never resets): the port is
        # simply closed there. Shown apart so it is not read as a policy denial.
        marks = {cell: "R" for cell, outcome in outcomes.items() if outcome == "refused"}
        refused = refused or bool(marks)
        sys.stdout.write(t.text(marks))
    if refused:
        print("\nR: refused: nothing listens on that port of the target pod (the policy let it through)")
    if staged is not None:
        print(f"\nstaged policies (not enforced; `podnet promote` enforces one): "
              f"{len(staged) or 'no'} cell{'' if len(staged) == 1 else 's'} would change")
        for c in staged:
            print(f"  {c.protocol}/{c.port} IPv{c.family} {c.text()}")


# ---- analyze --------------------------------------------------------------------------
def _expand(objs: list[Resource]) -> list[Resource]:
    """Deployments become their pods (names as the lab kubelet makes them, seeded)."""
    from podnet.lab.workloads import deployment_plan
    out = list(objs)
    rng = random.Random(0)
    for d in objs:
        if isinstance(d, Deployment):
            out.extend(deployment_plan(d, [], rng).create)
    return out


def load_objects(paths: list[str], addresses: bool = True) -> list[Resource]:
    """Validated objects of the manifests (Deployments expanded to pods); with `addresses`,
    pods without any get them from `assign_ips`."""
    from podnet.api.codec import load_paths
    from podnet.api.validate import validate_manifests
    try:
        manifests = load_paths(paths)
        validate_manifests(manifests)
    except ApiError as e:
        raise UserError(str(e)) from None
    objs = _expand([m.obj for m in manifests])
    return assign_ips(objs) if addresses else objs


def cmd_analyze(args: argparse.Namespace) -> int:
    from podnet.cli import policy_whatif
    policy_whatif.check_args(args)
    if args.diff or args.with_:
        return policy_whatif.cmd_whatif(args)
    objs = load_objects(args.filename)
    state = ClusterState.from_objects(objs)
    pods = sorted((p for p in state.pods if not args.namespace or p.namespace == args.namespace),
                  key=lambda p: (p.namespace, p.name))
    if not pods:
        raise UserError(f"no pods in {', '.join(args.filename)}")
    tables = predict_tables(state, pods, args.port or [80], args.protocol, args.family, args.to)
    staged = None
    if state.staged_policies:  # not enforced: shown as what they would change
        from podnet.calc.policy.whatif import changes, promoted
        after = promoted(state)
        staged = [c for port in args.port or [80] for c in changes(
            state, after, port, args.protocol, args.family, args.namespace, args.to)]
    _print(tables, args.output, staged)
    return 0


def predict_tables(state: ClusterState, pods: list[Pod], ports: list[int], protocol: str, family: int,
                   to: list[str] | None = None) -> list[tuple[TruthTable, int, dict[tuple[str, str], str]]]:
    """One predicted table per port: `pods` to `pods` (or to the addresses `to`)."""
    targets: list[Pod | str] = list(to) if to else list(pods)
    return [(predict(state, port, protocol, family, sources=pods, targets=targets), family, {})
            for port in ports]


# ---- probe ----------------------------------------------------------------------------
def cmd_probe(args: argparse.Namespace) -> int:
    from podnet.cli import context
    if os.geteuid() != 0:
        raise UserError("probe needs root (it connects from inside the pods' network namespaces)")
    store = context.open_store(args)
    try:
        pods = [p for p in store.list("Pod").items if isinstance(p, Pod)]
    finally:
        store.close()
    ns = None if args.all_namespaces else (args.namespace or "default")
    tables = probe_tables(pods, ns, args.port or [80], args.protocol, args.family, args.to, args.timeout)
    _print(tables, args.output)
    return 0


def probe_sources(pods: list[Pod], namespace: str | None, family: int) -> list[Pod]:
    """The pods a probe connects from (and to): wired, running, with an address of the family."""
    wired = [p for p in pods if p.annotations.get(NETNS_ANNOTATION) and _family_ip(p, family)
             and not p.host_network and p.deletion_timestamp is None]
    wired.sort(key=lambda p: (p.namespace, p.name))
    return [p for p in wired if namespace is None or p.namespace == namespace]


def probe_tables(pods: list[Pod], namespace: str | None, ports: list[int], protocol: str, family: int,
                 to: list[str] | None = None, timeout: float = 1.0,
                 ) -> list[tuple[TruthTable, int, dict[tuple[str, str], str]]]:
    """Real connections, one table per port (root: it enters the pods' namespaces)."""
    from podnet.cli.policy_probe import probe
    sources = probe_sources(pods, namespace, family)
    if not sources:
        raise UserError(f"no running pods{'' if namespace is None else f' in namespace {namespace}'} "
                        f"with an IPv{family} address")
    src = [(pod_label(p), p.annotations[NETNS_ANNOTATION]) for p in sources]
    if to:
        dst = [(a, a) for a in to]
    else:
        dst = [(pod_label(p), str(_family_ip(p, family))) for p in sources]
    tables = []
    for port in ports:
        t, results = probe(src, dst, port, protocol, timeout=timeout)
        tables.append((t, family, {(r.source, r.target): r.outcome for r in results}))
    return tables


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, action="append", help="port to test (repeatable; default 80)")
    p.add_argument("--protocol", type=str.upper, choices=PROTOCOLS, default="TCP")
    p.add_argument("--family", type=int, choices=(4, 6), default=4)
    p.add_argument("--to", action="append", metavar="ADDRESS",
                   help="probe this address (e.g. outside the cluster) instead of the pods (repeatable)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")


def register(sub: Any) -> None:
    a = sub.add_parser("analyze", help="predicted NetworkPolicy reachability from manifests alone; "
                                       "--with/--diff: only what a change would change")
    a.add_argument("-f", "--filename", action="append",
                   help="manifest file or directory (repeatable)")
    a.add_argument("--with", dest="with_", action="append", metavar="FILE",
                   help="what changes if FILE is applied on top of -f (or of the current lab) (repeatable)")
    a.add_argument("--diff", nargs=2, metavar=("DIR_A", "DIR_B"),
                   help="what changes from the manifests of DIR_A to those of DIR_B (exit 1 when something does)")
    a.add_argument("-n", "--namespace", help="only pods of this namespace (default: all)")
    _common(a)
    a.set_defaults(func=cmd_analyze)
    p = sub.add_parser("probe", help="real connections from every pod to every pod of the lab")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-n", "--namespace", help="pods of this namespace (default: default)")
    g.add_argument("-A", "--all-namespaces", action="store_true", help="pods of every namespace")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per connection (default 1)")
    _common(p)
    p.set_defaults(func=cmd_probe)
