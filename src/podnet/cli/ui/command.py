"""`podnet ui [--name LAB] [--port P]`: serve the web view of a lab on 127.0.0.1 and print
its URL. Read-only but for the page's explicit actions (probe, a confirmed trace)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from podnet.cli import context
from podnet.cli.errors import UserError

DEFAULT_PORT = 8040


def _lab(name: str | None) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(lab name, its datastore URL, its picture) of the named or current lab."""
    from podnet.cli.ui.views import lab_view
    from podnet.lab.state import LabState
    from podnet.lab.topology import spec_from_dict
    lab = name or context.current_lab()
    if not lab:
        return None, None, None
    d = context.lab_dir(lab)
    try:
        url = (d / "datastore.url").read_text().strip()
    except OSError:
        raise UserError(f"no lab {lab} on this machine (podnet up --name {lab})") from None
    meta = LabState(d).read_meta()
    return lab, url, lab_view(spec_from_dict(meta["spec"])) if meta.get("spec") else None


def cmd_ui(args: argparse.Namespace) -> int:
    from podnet.cli.ui.live import Live
    from podnet.cli.ui.server import UiServer, bind, serve
    lab, url, picture = _lab(args.name)
    datastore = args.datastore or url or context.datastore_url(args)
    store = context.open_store(argparse.Namespace(datastore=datastore))
    try:
        sock = bind(args.port)
    except OSError as e:
        store.close()
        raise UserError(f"cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}") from None
    server = UiServer(Live(store, picture), lab=lab, datastore=datastore)

    def ready(link: str) -> None:
        print(f"podnet ui: {link}  (lab {lab or '-'}, datastore {datastore}; Ctrl-C stops)", flush=True)

    try:
        asyncio.run(serve(server, sock, ready))
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
        sock.close()
    print("podnet ui: stopped", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("ui", help="the web view: topology, reachability, a packet's path, live (127.0.0.1 only)")
    p.add_argument("--name", help="the lab (default: the current one)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)")
    p.set_defaults(func=cmd_ui)
