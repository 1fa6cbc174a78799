"""`podnet promote KIND NAME`: enforce a staged policy (issue 20 §2).

A NetworkPolicy or ClusterNetworkPolicy annotated `podnet.io/staged: "true"` is stored
and validated like any other, but calc leaves it out of every decision (calc/model.py),
so no node enforces it; `podnet analyze` lists the cells it would change. Promoting it is
removing the annotation, one update through the write path (a compare-and-swap on the
revision read), after which every agent enforces it at its next sync.
"""
from __future__ import annotations

import argparse
from typing import Any

from podnet.api.policy import STAGED_ANNOTATION, is_staged
from podnet.cli.errors import UserError

STAGEABLE = ("NetworkPolicy", "ClusterNetworkPolicy")


def cmd_promote(args: argparse.Namespace) -> int:
    from podnet.apiserver.write import Writer
    from podnet.cli.context import open_store
    from podnet.cli.kinds import resolve_kind
    from podnet.datastore.interface import NotFound
    info = resolve_kind(args.kind)
    if info.kind not in STAGEABLE:
        raise UserError(f"only {' and '.join(STAGEABLE)} can be staged, not {info.kind}")
    ns = (args.namespace or "default") if info.kind == "NetworkPolicy" else ""
    store = open_store(args)
    try:
        try:
            obj = store.get(info.kind, ns, args.name)
        except NotFound:
            raise UserError(f'{info.qualified} "{args.name}" not found') from None
        if not is_staged(obj):
            print(f"{info.qualified}/{args.name} is already enforced (not staged)")
            return 0
        md = obj.to_dict()["metadata"]
        annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k != STAGED_ANNOTATION}
        d = obj.to_dict()
        d["metadata"]["annotations"] = annotations
        if not annotations:
            del d["metadata"]["annotations"]
        from podnet.api.objects import from_dict
        Writer(store).update(from_dict(d))
    finally:
        store.close()
    print(f"{info.qualified}/{args.name} promoted (enforced from the next sync)")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("promote", help="enforce a staged NetworkPolicy or ClusterNetworkPolicy "
                                       "(remove its podnet.io/staged annotation)")
    p.add_argument("kind", help="networkpolicy (netpol) or clusternetworkpolicy (cnp)")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", help="the NetworkPolicy's namespace (default: default)")
    p.set_defaults(func=cmd_promote)
