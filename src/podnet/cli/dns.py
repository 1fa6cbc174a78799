"""`podnet dns`: run the cluster DNS server in the foreground until SIGTERM/SIGINT.

The lab starts it inside a DNS pod's netns (`ip netns exec <pod> podnet dns ...`); it
needs only the datastore URL (global `--datastore` / PODNET_DATASTORE).
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from podnet.cli.errors import UserError

POD_MODES = ("insecure", "verified", "disabled")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dns", help="serve cluster DNS (the kube-dns pods run this)",
                              description="Serve the cluster zone from the datastore, forward other names.")
    p.add_argument("--zone", default="cluster.local", help="cluster domain (default cluster.local)")
    p.add_argument("--ttl", type=int, default=30, help="TTL of cluster records, 0..3600 (default 30)")
    p.add_argument("--listen", action="append", metavar="ADDR[:PORT]",
                   help="address to serve on, repeatable; [v6]:port for IPv6 (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=53, help="port for --listen addresses without one (default 53)")
    p.add_argument("--upstream", action="append", metavar="ADDR[:PORT]",
                   help="server for names outside the zone, repeatable; 'none' to refuse them "
                        "(default: the nameservers of /etc/resolv.conf)")
    p.add_argument("--pods", choices=POD_MODES, default="insecure",
                   help="a-b-c-d.<ns>.pod records: insecure (default, as kubeadm), verified, disabled")
    p.add_argument("--cache-ttl", type=int, default=30, help="cap on cached upstream answers, s (default 30)")
    p.add_argument("--cache-mb", type=int, default=128,
                   help="memory for the cluster zone's pre-built answers, MiB (default 128; "
                        "least recently asked go first, half at a time)")
    p.add_argument("--sync-wait", type=float, default=5.0,
                   help="seconds to wait for the first zone before opening the ports (default 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    p.set_defaults(func=run)


def _listen(args: argparse.Namespace) -> list[tuple[str, int]]:
    from podnet.dns.server import parse_hostport
    out = []
    for text in args.listen or ["0.0.0.0"]:
        try:
            out.append(parse_hostport(text, args.port))
        except ValueError as e:
            raise UserError(f"--listen {text!r}: {e}") from None
    return out


def _upstreams(args: argparse.Namespace) -> list[tuple[str, int]] | None:
    from podnet.dns.server import parse_hostport
    if not args.upstream:
        return None
    if [u.lower() for u in args.upstream] == ["none"]:
        return []
    out = []
    for text in args.upstream:
        try:
            out.append(parse_hostport(text))
        except ValueError as e:
            raise UserError(f"--upstream {text!r}: {e}") from None
    return out


def _datastore_url(args: argparse.Namespace) -> str:
    try:
        from podnet.cli.context import datastore_url
        return datastore_url(args)
    except ImportError:
        import os
        url = getattr(args, "datastore", None) or os.environ.get("PODNET_DATASTORE")
        if not url:
            raise UserError("no datastore: give --datastore or set PODNET_DATASTORE") from None
        return str(url)


def run(args: argparse.Namespace) -> int:
    from podnet.datastore.interface import DatastoreError
    from podnet.dns.server import DnsServer

    if not 0 <= args.ttl <= 3600:
        raise UserError(f"--ttl {args.ttl}: must be 0..3600")
    if args.cache_mb < 1:
        raise UserError(f"--cache-mb {args.cache_mb}: must be at least 1")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s podnet-dns %(levelname)s %(message)s")
    url = _datastore_url(args)
    try:
        srv = DnsServer(url, _listen(args), args.zone, args.ttl, _upstreams(args), args.pods,
                        cache_ttl=args.cache_ttl, cache_bytes=args.cache_mb << 20)
    except DatastoreError as e:
        raise UserError(f"datastore {url}: {e}") from None
    except ValueError as e:  # a bad --zone or --pods
        raise UserError(str(e)) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        srv.start(sync_timeout=args.sync_wait)
    except OSError as e:
        where = ", ".join(f"{h}:{p}" for h, p in srv.listen)
        raise UserError(f"cannot listen on {where}: {e.strerror or e}") from None
    logging.info("listening on %s (udp+tcp), zone %s, upstreams %s, pods %s",
                 ", ".join(f"{h}:{p}" for h, p in srv.bound), args.zone,
                 ", ".join(f"{h}:{p}" for h, p in srv.upstreams) or "none", args.pods)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        srv.stop()
    return 0
