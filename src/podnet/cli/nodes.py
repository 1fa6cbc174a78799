"""`podnet node add NAME` / `podnet node delete NAME` (issue 17 §4): nodes join and leave a
running lab; `podnet node status` (cli/bgp.py) shares the `node` command. Thin: podnet.lab
(node_add, node_delete) does the work; this parses, takes the lab's lock, prints."""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

from podnet.cli import bgp, context
from podnet.cli.errors import UserError


def _lab(args: argparse.Namespace) -> tuple[Any, Any]:
    from podnet.lab.state import LabState
    from podnet.lab.topology import TopologyError, spec_from_dict
    if os.geteuid() != 0:
        raise UserError(f"podnet node {args.node_command} needs root (it changes the lab's namespaces)")
    name = args.lab or context.current_lab()
    if not name:
        raise UserError(f"podnet node {args.node_command}: no lab (give --lab, or `podnet use NAME`)")
    state = LabState(context.lab_dir(name))
    meta = state.read_meta()
    if not meta.get("spec"):
        raise UserError(f"no lab named {name!r} is up (see `podnet labs`)")
    try:
        return spec_from_dict(meta["spec"]), state
    except TopologyError as e:
        raise UserError(str(e)) from None


def _progress() -> Any:
    t0 = time.monotonic()
    return lambda line: print(f"[{time.monotonic() - t0:5.2f}s] {line}", flush=True)


def cmd_add(args: argparse.Namespace) -> int:
    from podnet.datastore.interface import open_datastore
    from podnet.lab.node_add import add_node
    from podnet.lab.topology import TopologyError
    from podnet.lab.up import LabError
    _, state = _lab(args)
    with state.locked():
        spec, state = _lab(args)  # as it is now that no other change runs
        store = open_datastore(state.datastore_url())
        try:
            node = add_node(spec, state, store, args.name, _progress(), wait=args.timeout)
        except (TopologyError, LabError) as e:
            raise UserError(f"podnet node add {args.name}: {e}") from None
        finally:
            store.close()
    print(f"node {node.name} joined lab {spec.name} ({node.ip4}); its blocks come with its first pod")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from podnet.datastore.interface import open_datastore
    from podnet.lab.node_delete import delete_node
    from podnet.lab.topology import TopologyError
    _, state = _lab(args)
    with state.locked():
        spec, state = _lab(args)
        try:
            spec.without_node(args.name)
        except TopologyError as e:
            raise UserError(f"podnet node delete {args.name}: {e}") from None
        store = open_datastore(state.datastore_url())
        try:
            rep = delete_node(spec, state, store, args.name, _progress())
        finally:
            store.close()
    if rep.routes_left:
        print("routes still pointing at the node:\n  " + "\n  ".join(rep.routes_left))
        return 1
    print(f"node {args.name} left lab {spec.name}: {len(rep.evicted)} pods drained"
          + (f" ({len(rep.forced)} deleted for good at the drain's timeout)" if rep.forced else "")
          + "; no route points at it")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("node", help="nodes of a lab: status (BGP sessions), add, delete")
    nsub = p.add_subparsers(dest="node_command", metavar="COMMAND")
    bgp.register_status(nsub)
    a = nsub.add_parser("add", help="a new node joins the running lab (n<i>: its address is .10+i)")
    a.add_argument("name", help="n<i>, e.g. n4")
    a.add_argument("--lab", help="the lab (default: the current one)")
    a.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for its agent to register")
    a.set_defaults(func=cmd_add)
    d = nsub.add_parser("delete", help="cordon, drain (graceful), release its blocks, withdraw its "
                                       "routes, remove its namespace and processes")
    d.add_argument("name")
    d.add_argument("--lab", help="the lab (default: the current one)")
    d.set_defaults(func=cmd_delete)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])
