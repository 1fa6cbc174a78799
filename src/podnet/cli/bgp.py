"""`podnet node status` (under cli/nodes.py's `node` command): each node's BGP sessions, as `calicoctl node status` shows them
(peer, state, uptime, routes learned), asked of the node's BIRD over its control socket.
In a lab: every node (or `--node`), and `--router` adds the lab router's view."""
from __future__ import annotations

import argparse
from typing import Any
from pathlib import Path

from podnet.cli import context
from podnet.cli.errors import UserError
from podnet.dataplane.bird.daemon import BirdError, Session, sessions


def _uptime(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def sockets(lab: str | None, node: str | None, router: bool) -> list[tuple[str, Path]]:
    name = lab or context.current_lab()
    if not name:
        raise UserError("podnet node status: no lab (give --lab, or `podnet use NAME`)")
    from podnet.lab.state import LabState
    from podnet.lab.topology import spec_from_dict
    from podnet.lab.tor import node_bird_dir, router_bird_dir
    state = LabState(context.lab_dir(name))
    meta = state.read_meta()
    if not meta.get("spec"):
        raise UserError(f"lab {name}: no spec in its state (is it up?)")
    spec = spec_from_dict(meta["spec"])
    if spec.routing != "bgp":
        raise UserError(f"lab {name} routes statically (no BGP): `podnet up --routing bgp` runs BIRD")
    nodes = [spec.node(node)] if node else list(spec.nodes)
    out = [(n.name, node_bird_dir(state, n.name) / "bird.ctl") for n in nodes]
    if router:
        out.append(("router", router_bird_dir(state) / "bird.ctl"))
    return out


def table(rows: list[tuple[str, Session]]) -> str:
    head = ("NODE", "PEER", "SESSION", "STATE", "BGP", "UPTIME", "ROUTES", "FILTERED")
    cells = [head] + [(n, s.neighbor or "range", s.name, s.state, s.bgp_state or "-", _uptime(s.uptime),
                       str(s.imported), str(s.filtered)) for n, s in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def cmd_status(args: argparse.Namespace) -> int:
    rows: list[tuple[str, Session]] = []
    for who, ctl in sockets(args.lab, args.node, args.router):
        try:
            rows += [(who, s) for s in sessions(ctl)]
        except (BirdError, OSError) as e:
            raise UserError(f"{who}: BIRD does not answer on {ctl}: {e}") from None
    print(table(rows))
    return 0


def register_status(nsub: Any) -> None:
    """`status` under the `node` command (cli/nodes.py registers it)."""
    s = nsub.add_parser("status", help="each node's BGP sessions: peer, state, uptime, routes learned")
    s.add_argument("--lab", help="the lab (default: the current one)")
    s.add_argument("--node", help="only this node")
    s.add_argument("--router", action="store_true", help="also the lab router's sessions")
    s.set_defaults(func=cmd_status)
