"""`podnet controllers`: run cluster controllers against the datastore, each supervised
(controllers/manager.py). Which ones: `--controllers`, by default those of the datastore's
mode. On the Kubernetes datastore (a real cluster) Calico kube-controllers' set: IPAM
garbage collection, node cleanup and LoadBalancer addresses; kube-controller-manager keeps
the EndpointSlices there and kube-apiserver allocates Service IPs. On a store (SQLite,
etcd) the EndpointSlice controller (Service IPs are allocated at admission)."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any, Callable

from podnet.cli.context import datastore_url, open_store
from podnet.cli.errors import UserError
from podnet.controllers import ipam_gc, node_cleanup
from podnet.controllers.endpointslice import EndpointSliceController
from podnet.controllers.manager import BY_NAME, IN_A_CLUSTER, start_controllers
from podnet.datastore.interface import Datastore


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("controllers", help="run the cluster's controllers",
                              description="Run cluster controllers: " + ", ".join(BY_NAME) + ".")
    p.add_argument("--controllers", default="",
                   help="comma-separated names (default: on the Kubernetes datastore "
                        + ",".join(IN_A_CLUSTER) + "; else endpointslice)")
    p.add_argument("--once", action="store_true", help="one pass of each and exit")
    p.add_argument("--resync", type=float, default=300.0,
                   help="seconds between the EndpointSlice controller's full resyncs (default 300)")
    p.add_argument("--gc-grace", type=float, default=ipam_gc.GRACE,
                   help="seconds an address (ipam-gc) or a block (node-cleanup) must stay leaked "
                        f"before it is freed (default {ipam_gc.GRACE:.0f})")
    p.add_argument("--gc-interval", type=float, default=ipam_gc.INTERVAL,
                   help=f"seconds between their sweeps (default {ipam_gc.INTERVAL:.0f})")
    p.set_defaults(func=run)


def chosen(args: argparse.Namespace) -> list[str]:
    if args.controllers:
        names = [n.strip() for n in args.controllers.split(",") if n.strip()]
    else:
        names = list(IN_A_CLUSTER) if datastore_url(args).startswith("kubernetes") else ["endpointslice"]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise UserError(f"--controllers: unknown {', '.join(unknown) or '(none given)'}; "
                        f"known: {', '.join(BY_NAME)}")
    return names


def _maker(name: str, args: argparse.Namespace) -> Callable[[Datastore], Any]:
    """`Class(store)` with this command's options, named as the class (the supervisor logs it)."""
    cls = BY_NAME[name]
    if name == "ipam-gc":
        def make(store: Datastore) -> Any:
            return ipam_gc.IpamGarbageCollector(store, grace=args.gc_grace, interval=args.gc_interval)
    elif name == "node-cleanup":
        def make(store: Datastore) -> Any:
            return node_cleanup.NodeCleanup(store, grace=args.gc_grace, interval=args.gc_interval)
    elif name == "endpointslice":
        def make(store: Datastore) -> Any:
            return _Resyncing(store, args.resync)
    else:
        return cls
    make.__name__ = getattr(cls, "__name__", name)
    return make


class _Resyncing(EndpointSliceController):
    def __init__(self, store: Datastore, every: float):
        super().__init__(store)
        self.every = every

    def run(self, stop: threading.Event, resync_every: float | None = None) -> None:
        super().run(stop, self.every if resync_every is None else resync_every)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    names = chosen(args)
    makers = tuple(_maker(n, args) for n in names)
    if args.once:
        store = open_store(args)
        try:
            for name, make in zip(names, makers):
                ctl = make(store)
                if isinstance(ctl, EndpointSliceController):
                    ctl.reconcile_all()
                    print(f"{name}: {ctl.writes} slice writes")
                elif hasattr(ctl, "sweep"):
                    print(f"{name}: {len(ctl.sweep())} freed")
                else:
                    ctl.reconcile_all()
                    print(f"{name}: reconciled")
        finally:
            store.close()
        return 0
    open_store(args).close()   # fail now on a bad URL; make sure the namespaces exist
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("running: " + ", ".join(start_controllers(datastore_url(args), stop, makers)), flush=True)
    stop.wait()
    return 0
