"""`podnet controllers`: run the cluster's controllers against the datastore (today the
EndpointSlice controller; Service IPs are allocated at admission, in `podnet apply`)."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from podnet.controllers.endpointslice import EndpointSliceController
from podnet.cli.context import open_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("controllers", help="run the EndpointSlice controller",
                              description="Keep EndpointSlices in line with Services and Pods.")
    p.add_argument("--once", action="store_true", help="reconcile every namespace once and exit")
    p.add_argument("--resync", type=float, default=300.0, help="seconds between full resyncs (default 300)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = open_store(args)
    ctl = EndpointSliceController(store)
    try:
        if args.once:
            ctl.reconcile_all()
            print(f"reconciled: {ctl.writes} slice writes")
            return 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        ctl.run(stop, resync_every=args.resync)
        return 0
    finally:
        store.close()
