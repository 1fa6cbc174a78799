"""The web view's HTTP server (aiohttp): a page, its static files, read-only JSON, a live
event stream, and two POST actions that send real packets (probe, a confirmed trace).

Every request passes `guard.check` first (loopback peer, Host and Origin of this
listener, the access key of the printed URL or its cookie, the page's token on a POST);
no GET handler writes anything. The blocking
work (the store, trace, probe) runs in worker threads; topology and the matrix are read
from the informer's cache, which the store's watch keeps current.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from podnet.cli.errors import UserError
from podnet.cli.ui import actions, guard
from podnet.cli.ui.live import Live

log = logging.getLogger("podnet.ui")
STATIC = Path(__file__).parent / "static"
# The only files served: name -> content type (nothing is looked up by path). All are
# podnet's own: the page uses no third-party library, so there is no licence to ship.
FILES = {"app.css": "text/css", "app.js": "text/javascript", "topology.js": "text/javascript",
         "matrix.js": "text/javascript", "trace.js": "text/javascript", "flows.js": "text/javascript"}
KEEPALIVE = 15.0
MAX_BODY = 64 * 1024
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json")


class UiServer:
    def __init__(self, live: Live, *, lab: str | None, datastore: str, token: str | None = None) -> None:
        self.live = live
        self.lab = lab
        self.datastore = datastore
        self.token = token or secrets.token_urlsafe(24)
        self.key = secrets.token_urlsafe(24)  # the access key, in the printed URL only
        self.port = 0  # set by bind()
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="ui")

    def app(self) -> web.Application:
        a = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        r = a.router
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static)
        r.add_get("/api/topology", self.topology)
        r.add_get("/api/events", self.events)
        r.add_get("/api/matrix", self.matrix)
        r.add_get("/api/explain", self.explain)
        r.add_get("/api/trace", self.trace_predicted)
        r.add_get("/api/flows", self.flows)
        r.add_post("/api/trace", self.trace_confirmed)
        r.add_post("/api/probe", self.probe)
        a.on_cleanup.append(self._cleanup)
        return a

    async def _cleanup(self, _app: web.Application) -> None:
        self.live.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(*args, **kw))

    # ---- every request --------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        from_url = request.query.get(guard.KEY_PARAM)
        req = guard.Request(request.method, peer[0] if peer else None, request.headers.get("Host"),
                            request.headers.get("Origin"), request.headers.get(guard.TOKEN_HEADER),
                            from_url or request.cookies.get(guard.KEY_COOKIE))
        try:
            guard.check(req, self.port, self.token, self.key)
            if request.method == "POST" and request.content_type != "application/json":
                raise guard.Refused(415, "a POST body is JSON (Content-Type: application/json)")
            resp = await handler(request)
        except guard.Refused as e:
            log.warning("refused %s %s from %s: %s", request.method, request.path, req.peer, e)
            resp = _json({"error": str(e)}, e.status)
        except UserError as e:
            resp = _json({"error": str(e)}, 400)
        except web.HTTPException as e:
            resp = _json({"error": e.reason}, e.status)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as e:  # noqa: BLE001 - one request must not take the view down
            log.exception("%s %s", request.method, request.path_qs)
            resp = _json({"error": f"internal error: {type(e).__name__}: {e}"}, 500)
        if not resp.prepared:
            resp.headers.update(HEADERS)
            if from_url and resp.status < 400:  # the page's own requests carry it from now on
                resp.set_cookie(guard.KEY_COOKIE, self.key, path="/", httponly=True, samesite="Strict")
        return resp

    # ---- the page -------------------------------------------------------------------
    async def index(self, _request: web.Request) -> web.Response:
        html = (STATIC / "index.html").read_text().replace("{{TOKEN}}", self.token)
        return web.Response(text=html, content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=FILES[name])

    # ---- read-only JSON -------------------------------------------------------------
    async def topology(self, _request: web.Request) -> web.Response:
        return _json(self.live.topology())

    async def matrix(self, request: web.Request) -> web.Response:
        return _json(await self.run(actions.matrix, self.live.state(), dict(request.query)))

    async def explain(self, request: web.Request) -> web.Response:
        return _json(await self.run(actions.explain, self.live.state(), dict(request.query)))

    async def trace_predicted(self, request: web.Request) -> web.Response:
        """Prediction only: no packet is sent."""
        return _json(await self.run(actions.trace, dict(request.query), confirm=False, lab=self.lab,
                                    datastore=self.datastore))

    async def flows(self, request: web.Request) -> web.Response:
        return _json(await self.run(actions.flows, self.lab, dict(request.query)))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `topology` now and after every change the watch delivers."""
        resp = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q = self.live.subscribe()
        try:
            while True:
                data = json.dumps(self.live.topology(), separators=(",", ":"))
                await resp.write(f"event: topology\ndata: {data}\n\n".encode())
                while True:
                    try:
                        await asyncio.wait_for(q.get(), KEEPALIVE)
                        break
                    except asyncio.TimeoutError:
                        await resp.write(b": keep-alive\n\n")
        except (ConnectionResetError, RuntimeError):
            pass  # the page went away
        finally:
            self.live.unsubscribe(q)
        return resp

    # ---- actions (POST, with the page's token) -------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise UserError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise UserError("the body is a JSON object")
        return body

    async def trace_confirmed(self, request: web.Request) -> web.Response:
        """Predict, then send one real packet and compare with the kernel's own trace."""
        body = await self._body(request)
        return _json(await self.run(actions.trace, body, confirm=True, lab=self.lab, datastore=self.datastore))

    async def probe(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return _json(await self.run(actions.probe, self.live.state(), body))


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 only (port 0: any free port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    s.setblocking(False)
    return s


async def serve(server: UiServer, sock: socket.socket, ready: Callable[[str], None],
                stop: "asyncio.Event | None" = None) -> None:
    """Serve until `stop` is set (default: until SIGTERM or SIGINT); `ready(url)` once the
    page can be loaded."""
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    server.port = sock.getsockname()[1]
    server.live.start(asyncio.get_running_loop())
    await server.run(server.live.informer.wait_synced, 30.0)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, shutdown_timeout=1.0).start()
        ready(f"http://127.0.0.1:{server.port}/?{guard.KEY_PARAM}={server.key}")
        await stop.wait()
    finally:
        await runner.cleanup()
