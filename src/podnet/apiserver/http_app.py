"""The HTTP application (aiohttp): one handler that reads a request as kube-apiserver does.

Path -> target (paths.py), who -> identity (auth.py), method -> verb, then the verb runs
in a worker thread over the write path (crud.py; the datastore clients are blocking) and
its answer goes back as JSON. Every refusal is a metav1.Status with its HTTP code; an
unexpected exception is a 500 Status and is logged, and never takes the server down.
"""
from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from aiohttp import web

from podnet.apiserver import (auth, bodies, discovery, exec_stream, logs, openapi, paths, reviews,
                              sa_tokens, strict, table)
from podnet.apiserver.crud import Crud
from podnet.apiserver.dryrun import MODES as DRY_RUN_MODES, DryRunWriter
from podnet.apiserver.managed import manager_name
from podnet.apiserver.patch_verb import patch
from podnet.apiserver.resources import ApiResource
from podnet.apiserver.status import ApiStatus
from podnet.apiserver.write import Writer
from podnet.datastore.interface import Datastore

log = logging.getLogger("podnet.apiserver")
WORKERS = 8
MAX_WARNINGS = 20
BODY_TIMEOUT = 30.0  # a client that sends its body slower than this gets 408
_METHOD_VERBS = {("GET", False): "list", ("GET", True): "get", ("POST", False): "create",
                 ("PUT", True): "update", ("PATCH", True): "patch", ("DELETE", True): "delete",
                 ("DELETE", False): "deletecollection"}


async def read_body(request: web.Request) -> bytes:
    """The body, within BODY_TIMEOUT (a slow client holds a connection, never a worker)."""
    try:
        return await asyncio.wait_for(request.read(), BODY_TIMEOUT)
    except asyncio.TimeoutError:
        raise ApiStatus(408, f"the request body did not arrive within {BODY_TIMEOUT:.0f}s", "Timeout") from None


def _json(body: Any, status: int = 200) -> web.Response:
    return _encoded(json.dumps(body, separators=(",", ":")).encode(), status)


def _encoded(data: bytes, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/json")


def _render(body: Any, res: ApiResource, as_table: bool, include: str) -> bytes:
    if as_table:
        body = table.to_table(body, res, include)
    return json.dumps(body, separators=(",", ":")).encode()


class ApiApp:
    def __init__(self, store: Datastore, tokens: auth.TokenTable, server_address: str = "",
                 allow_exec: bool = False, sa_key: bytes = b"", ca_pem: str = "",
                 locate_log: logs.Locate | None = None):
        self.store = store
        self.locate_log = locate_log
        self.allow_exec = allow_exec
        self.sa_key, self.ca_pem = sa_key, ca_pem
        self.tokens = tokens
        self.server_address = server_address
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="api")
        from podnet.apiserver.watch import WatchHub  # its threads start on first use
        self.hub = WatchHub(store)
        self.crud = Crud(Writer(store), self.hub.caches)
        self.dry_crud = Crud(DryRunWriter(store), self.hub.caches)

    def app(self) -> web.Application:
        a = web.Application(client_max_size=bodies.MAX_BODY, middlewares=[self._errors])
        a.router.add_route("*", "/{tail:.*}", self.dispatch)
        a.on_cleanup.append(self._cleanup)
        return a

    async def _cleanup(self, _app: web.Application) -> None:
        self.hub.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiStatus as e:
            return _json(e.body(), e.code)
        except web.HTTPRequestEntityTooLarge:
            too_large = ApiStatus(413, f"the request is too large (limit {bodies.MAX_BODY} bytes)")
            return _json(too_large.body(), 413)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # noqa: BLE001 - a request must never take the server down
            log.exception("%s %s", request.method, request.path_qs)
            internal = ApiStatus(500, f"internal error: {type(exc).__name__}: {exc}")
            return _json(internal.body(), 500)

    def identity(self, request: web.Request) -> auth.Identity:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        return auth.authenticate(peer, request.headers.get("Authorization"), self.tokens,
                                 lambda tok: sa_tokens.verify(self.sa_key, tok))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        ident = self.identity(request)
        path = request.path
        target = paths.parse(path)
        if target is None or not target.plural:
            auth.check_path(ident, path)
            return self._non_resource(request, target)
        res = target.resource
        if target.subresource == "exec" and "exec" in res.subresources and target.name:
            return await self._exec(request, ident, res, target)
        if target.subresource == "log" and "log" in res.subresources and target.name:
            auth.check(ident, "get", res.group, res.plural, "log", target.name, target.namespace)
            if request.method != "GET":
                raise ApiStatus(405, f"method {request.method} is not allowed here")
            pod = await self.run(self.crud.get, res, target.namespace, target.name)
            return await logs.serve(request, pod, self.locate_log)
        verb = _METHOD_VERBS.get((request.method, bool(target.name)))
        if verb is None:
            raise ApiStatus(405, f"method {request.method} is not allowed here")
        q = request.query
        if verb in ("list", "get") and q.get("watch") in ("1", "true"):
            verb = "watch"
        if target.subresource and target.subresource not in res.subresources:
            raise ApiStatus(404, "the server could not find the requested resource")
        if res.kind in reviews.KINDS:
            if verb != "create" or ident.anonymous:
                raise auth.unauthorized() if ident.anonymous else ApiStatus(405, "only create", "MethodNotAllowed")
            body = bodies.object_body(await read_body(request), request.headers.get("Content-Type"))
            return _json(reviews.answer(ident, res, body), 201)
        auth.check(ident, verb, res.group, res.plural, target.subresource, target.name,
                   target.namespace)
        if verb not in res.verbs and not target.subresource:
            raise ApiStatus(405, f"{verb} is not supported on {res.plural}", "MethodNotAllowed")
        if res.namespaced is False and target.namespace:
            raise ApiStatus(404, "the server could not find the requested resource")
        if verb == "watch":
            return await self.hub.serve(request, res, target.namespace, target.name, q)
        warnings: list[str] = []
        body = await self._answer(request, res, target, verb, warnings, ident)
        as_table = verb in ("get", "list") and table.wanted(request.headers.get("Accept", ""))
        if as_table or verb == "list":   # a list's encoding in a worker: the loop keeps serving
            resp = _encoded(await self.run(_render, body, res, as_table, q.get("includeObject", "Metadata")))
        else:
            resp = _json(body, 201 if verb == "create" else 200)
        for w in warnings[:MAX_WARNINGS]:
            resp.headers.add("Warning", '299 - ' + json.dumps(w))
        return resp

    async def _exec(self, request: web.Request, ident: auth.Identity, res: ApiResource,
                    t: paths.Target) -> web.StreamResponse:
        auth.check(ident, "create", res.group, res.plural, "exec", t.name, t.namespace)
        if not self.allow_exec:
            raise ApiStatus(403, "exec is served only in a lab (podnet apiserver --allow-exec)", "Forbidden")
        if request.method not in ("GET", "POST"):
            raise ApiStatus(405, f"method {request.method} is not allowed here")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiStatus(400, "upgrade request required: exec speaks the websocket channel "
                                 "protocol (v5.channel.k8s.io) only", "BadRequest")
        pod = await self.run(self.crud.get, res, t.namespace, t.name)
        return await exec_stream.serve(request, pod, await self.run(self._pod_env, pod))

    def _pod_env(self, pod: dict[str, Any]) -> exec_stream.PodEnv:
        """What a pod's process gets in Kubernetes: KUBERNETES_SERVICE_* of the `kubernetes`
        Service, and its service account's token, the cluster CA and its namespace."""
        md = pod["metadata"]
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        token = sa_tokens.issue(self.sa_key, md.get("namespace", ""), sa, md.get("name", ""),
                                md.get("uid", "")) if self.sa_key else ""
        try:
            svc = self.store.get("Service", "default", "kubernetes")
            host, port = svc.spec.get("clusterIP") or "", (svc.spec.get("ports") or [{}])[0].get("port")
        except Exception:  # noqa: BLE001 - no such Service: no variables
            host, port = "", None
        return exec_stream.PodEnv(str(md.get("namespace", "")), token, self.ca_pem, str(host),
                                  int(port) if port else 0)

    async def _answer(self, request: web.Request, res: ApiResource, t: paths.Target, verb: str,
                      warnings: list[str], ident: auth.Identity) -> Any:
        ns, name, sub, q = t.namespace, t.name, t.subresource, request.query
        crud = self.crud
        if q.get("dryRun") and verb not in ("get", "list"):
            if q.get("dryRun") not in DRY_RUN_MODES:
                raise ApiStatus(400, f"dryRun: {q.get('dryRun')!r} is not one of {', '.join(DRY_RUN_MODES)}")
            crud = self.dry_crud
        if verb == "get":
            return await self.run(crud.get_scale if sub == "scale" else crud.get, res, ns, name)
        if verb == "list":
            return await self.run(crud.list, res, ns, dict(q))
        data = await read_body(request)
        if verb in ("delete", "deletecollection"):
            opts = bodies.object_body(data, request.content_type or bodies.JSON) if data.strip() else {}
            for k in ("propagationPolicy", "gracePeriodSeconds"):
                if q.get(k):
                    opts[k] = q[k]
            dry = opts.get("dryRun")   # DeleteOptions carries it in the body (kubectl delete --dry-run=server)
            if dry:
                if not isinstance(dry, list) or any(m not in DRY_RUN_MODES for m in dry):
                    raise ApiStatus(400, f"dryRun: {dry!r} is not a list of {', '.join(DRY_RUN_MODES)}")
                crud = self.dry_crud
            if verb == "delete":
                return await self.run(crud.delete, res, ns, name, opts)
            return await self.run(crud.delete_collection, res, ns, dict(q), opts)
        manager = manager_name(q, request.headers.get("User-Agent"))
        ct = request.headers.get("Content-Type")
        if verb == "patch" and bodies.media_type(ct) in bodies.PATCH_TYPES[1:] and not sub:
            warnings += strict.check(bodies.decode(data, ct, bodies.PATCH_TYPES), res.kind,
                                     q.get("fieldValidation"))
        if verb == "patch":
            return await self.run(patch, crud, res, ns, name, sub, data,
                                  request.headers.get("Content-Type"), dict(q), manager)
        obj = bodies.object_body(data, ct)
        if not sub:
            warnings += strict.check(obj, res.kind, q.get("fieldValidation"))
        if verb == "create":
            auth.node_restriction(ident, res.plural, verb, obj)
            return await self.run(crud.create, res, ns, obj, manager)
        if sub == "status":
            return await self.run(crud.update_status, res, ns, name, obj)
        if sub == "scale":
            return await self.run(crud.update_scale, res, ns, name, obj, manager)
        return await self.run(crud.update, res, ns, name, obj, manager)

    def _non_resource(self, request: web.Request, target: paths.Target | None) -> web.Response:
        if request.method != "GET":
            raise ApiStatus(405, f"method {request.method} is not allowed here")
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return _json(discovery.version())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path in ("/api", "/apis") and discovery.wants_aggregated(request.headers.get("Accept", "")):
            resp = _json(discovery.aggregated(core=path == "/api"))
            resp.headers["Content-Type"] = discovery.AGGREGATED
            resp.headers["Vary"] = "Accept"
            return resp
        if path == "/api":
            return _json(discovery.api_versions(self.server_address or request.host))
        if path == "/apis":
            return _json(discovery.api_group_list())
        if path.startswith("/openapi"):
            doc = openapi.document(path)
            if doc is None:
                raise ApiStatus(404, "the server could not find the requested resource")
            return web.Response(body=doc, content_type="application/json")
        if target is not None:
            listing = discovery.resource_list(target.group, target.version)
            if listing is not None:
                return _json(listing)
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            grp = discovery.api_group(parts[1])
            if grp is not None:
                return _json(grp)
        raise ApiStatus(404, "the server could not find the requested resource")
