"""Run the API server: TLS, listeners, the aiohttp application, until SIGTERM.

Listeners are addresses to bind (`198.18.0.11:6443`) or sockets already listening that
the caller handed over by file descriptor (the lab's loopback listener on the machine,
made by `podnet up` in the machine's namespace while this process lives in a node's).
TLS: the serving certificate and key, and the cluster CA for client certificates,
which are optional (a bearer token also authenticates) but verified when presented.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from podnet.apiserver.auth import TokenTable
from podnet.apiserver.http_app import ApiApp
from podnet.apiserver.logs import Locate
from podnet.apiserver.resources import RESOURCES
from podnet.datastore.interface import open_datastore

log = logging.getLogger("podnet.apiserver")


@dataclass
class Config:
    datastore: str
    cert: Path
    key: Path
    ca: Path
    tokens: Path | None = None
    listen: list[str] = field(default_factory=list)     # host:port ([v6]:port)
    listen_fds: list[int] = field(default_factory=list)
    advertise: str = ""
    allow_exec: bool = False   # kubectl exec runs commands in pod namespaces of this machine (the lab)
    sa_key: Path | None = None   # signs and checks service account tokens
    locate_log: Locate | None = None   # (pod, container) -> its output file (kubectl logs)


def tls_context(cfg: Config) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
    ctx.load_verify_locations(cafile=str(cfg.ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _bind(addr: str) -> socket.socket:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(512)
    return s


def sockets(cfg: Config) -> list[socket.socket]:
    out = [socket.socket(fileno=fd) for fd in cfg.listen_fds]
    out += [_bind(a) for a in cfg.listen]
    for s in out:
        s.setblocking(False)
    return out


async def serve(cfg: Config, ready: "asyncio.Event | None" = None) -> None:
    store = open_datastore(cfg.datastore)
    tokens = TokenTable(cfg.tokens.read_text() if cfg.tokens else "")
    api = ApiApp(store, tokens, cfg.advertise, cfg.allow_exec,
                 cfg.sa_key.read_bytes() if cfg.sa_key else b"", cfg.ca.read_text(), cfg.locate_log)
    api.hub.warm([r.kind for r in RESOURCES if not r.derived])
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    ctx = tls_context(cfg)
    socks = sockets(cfg)
    for s in socks:
        await web.SockSite(runner, s, ssl_context=ctx, shutdown_timeout=1.0).start()
    log.info("serving on %s", ", ".join(str(s.getsockname()) for s in socks))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()


def run(cfg: Config) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(cfg))
