"""`?watch=true`: a stream of watch events, one JSON object per line, from the shared caches.

Semantics as kube-apiserver's: resourceVersion absent or "0" starts with an ADDED event
per current object; a revision N replays what happened after N; one older than the
store keeps is an ERROR event carrying a 410 Expired Status. Label and field selectors
filter, and an object that stops (starts) matching is sent as DELETED (ADDED).
allowWatchBookmarks adds BOOKMARK events every BOOKMARK_EVERY seconds; sendInitialEvents
ends the initial events with the `k8s.io/initial-events-end` bookmark. timeoutSeconds
ends the stream (default TIMEOUT). Events of a table watch (`as=Table`) carry one-row
Tables. A watcher that falls QUEUE events behind is cut off (it re-watches).
"""
from __future__ import annotations

import asyncio
import collections
import json
import threading
from typing import Any, Mapping

from aiohttp import web

from podnet.api.objects import Resource
from podnet.apiserver import query, table
from podnet.apiserver.resources import ApiResource, served
from podnet.apiserver.status import ApiStatus
from podnet.apiserver.watch_cache import Caches
from podnet.datastore.interface import Compacted, Datastore

TIMEOUT = 1800.0
BOOKMARK_EVERY = 10.0
QUEUE = 10000
LINES = 256   # encoded event lines kept for the other watchers of the same event
_CLOSED = object()


class WatchHub:
    def __init__(self, store: Datastore):
        self.store = store
        self.caches = Caches(store)
        # An event's line, encoded once for all its watchers: (id of the object, type,
        # resource, as a Table) -> (the object, kept so its id is not reused; the line).
        self.lines: collections.OrderedDict[tuple[int, str, str, bool], tuple[Resource, bytes]] = \
            collections.OrderedDict()

    def warm(self, kinds: list[str]) -> None:
        for k in kinds:
            self.caches.get(k)

    def close(self) -> None:
        self.caches.close()

    async def serve(self, request: web.Request, res: ApiResource, ns: str, name: str,
                    q: Mapping[str, str]) -> web.StreamResponse:
        if res.derived:
            raise ApiStatus(405, f"watch of {res.plural} is not supported here; watch endpointslices",
                            "MethodNotAllowed")
        sel = query.label_selector(q.get("labelSelector"))
        terms = query.field_selector(q.get("fieldSelector"), res.kind)
        if name:
            terms.append(query.FieldTerm("metadata.name", name, True))
        rv = q.get("resourceVersion", "")
        try:
            after = None if rv in ("", "0") else int(rv)
        except ValueError:
            raise ApiStatus(400, f"resourceVersion {rv!r} is not a resource version") from None
        initial = q.get("sendInitialEvents") == "true"
        if initial:
            after = None
        try:
            timeout = min(float(q.get("timeoutSeconds") or TIMEOUT), TIMEOUT)
        except ValueError:
            raise ApiStatus(400, "timeoutSeconds must be a number") from None
        as_table = table.wanted(request.headers.get("Accept", ""))
        bookmarks = q.get("allowWatchBookmarks") == "true"

        def matches(o: Resource | None) -> bool:
            if o is None or (ns and o.namespace != ns):
                return False
            if sel is not None and not sel.matches(o.labels):
                return False
            return not terms or query.fields_match(terms, served(o.raw, res))

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cache = self.caches.get(res.kind)

        def sink(typ: str, rev: int, obj: Resource, prev: Resource | None) -> None:
            now, before = (typ != "DELETED" and matches(obj)), matches(prev) if prev is not None else False
            if typ == "DELETED":
                now, before = False, matches(obj)
            if now and not before:
                typ = "ADDED"
            elif before and not now:
                typ = "DELETED"
            elif not now:
                return
            loop.call_soon_threadsafe(_put, queue, (typ, obj))

        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        stop = threading.Event()
        sub = None
        try:
            try:
                sub, current, at = await loop.run_in_executor(None, cache.subscribe, sink, after)
            except Compacted:
                if after is None:
                    raise
                sub, current, at = None, [], after
                # A thread of its own: it lives as long as the stream, and on the loop's
                # default executor (a handful of threads) a few of them would starve every
                # other watch's subscribe (a client resuming many kinds after a restart).
                threading.Thread(target=self._private, args=(res.kind, after, sink, stop, queue, loop),
                                 daemon=True, name=f"api-watch-{res.kind}").start()
            await resp.prepare(request)
            for o in current:
                if matches(o):
                    await self._send(resp, "ADDED", served(o.raw, res), res, as_table)
            if initial:
                await self._bookmark(resp, res, at, initial_end=True)
            await self._pump(resp, queue, res, as_table, timeout, bookmarks, cache)
        except Compacted as e:
            if not resp.prepared:
                await resp.prepare(request)
            st = ApiStatus(410, f"too old resource version: {e.requested} ({e.oldest})", "Expired")
            await resp.write(_line({"type": "ERROR", "object": st.body()}))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stop.set()
            if sub is not None:
                cache.unsubscribe(sub)
        return resp

    def _private(self, kind: str, after: int, sink: Any, stop: threading.Event,
                 queue: asyncio.Queue[Any], loop: asyncio.AbstractEventLoop) -> None:
        """A watch from a revision older than the cache holds: the store's own watch."""
        prev: dict[tuple[str, str], Resource] = {}
        try:
            for ev in self.store.watch(after, (kind,), stop=stop):
                k = (ev.object.namespace, ev.object.name)
                sink(ev.type, ev.revision, ev.object, prev.get(k))
                prev[k] = ev.object
        except Compacted as e:
            loop.call_soon_threadsafe(_put, queue, e)
        except Exception:  # noqa: BLE001 - the stream ends; the client re-watches
            loop.call_soon_threadsafe(_put, queue, _CLOSED)

    async def _pump(self, resp: web.StreamResponse, queue: asyncio.Queue[Any], res: ApiResource,
                    as_table: bool, timeout: float, bookmarks: bool, cache: Any) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            left = end - loop.time()
            if left <= 0:
                return
            try:
                item = await asyncio.wait_for(queue.get(), min(left, BOOKMARK_EVERY))
            except asyncio.TimeoutError:
                if bookmarks:
                    await self._bookmark(resp, res, cache.revision)
                continue
            if item is _CLOSED:
                return
            if isinstance(item, Compacted):
                raise item
            if queue.qsize() > QUEUE:
                return
            typ, obj = item
            await resp.write(self._event_line(typ, obj, res, as_table))

    def _event_line(self, typ: str, obj: Resource, res: ApiResource, as_table: bool) -> bytes:
        """The line of a watch event; every watcher of the same resource gets the same
        bytes, encoded once (called in the event loop only)."""
        key = (id(obj), typ, f"{res.api_version}/{res.plural}", as_table)
        hit = self.lines.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        line = _line({"type": typ, "object": _shown(served(obj.raw, res), res, as_table)})
        self.lines[key] = (obj, line)
        if len(self.lines) > LINES:
            self.lines.popitem(last=False)
        return line

    async def _send(self, resp: web.StreamResponse, typ: str, obj: dict[str, Any],
                    res: ApiResource, as_table: bool) -> None:
        await resp.write(_line({"type": typ, "object": _shown(obj, res, as_table)}))

    async def _bookmark(self, resp: web.StreamResponse, res: ApiResource, rev: int,
                        initial_end: bool = False) -> None:
        md: dict[str, Any] = {"resourceVersion": str(rev)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        await resp.write(_line({"type": "BOOKMARK", "object": {
            "kind": res.kind, "apiVersion": res.api_version, "metadata": md}}))


def _shown(obj: dict[str, Any], res: ApiResource, as_table: bool) -> dict[str, Any]:
    if not as_table:
        return obj
    return table.to_table({"kind": f"{res.kind}List", "items": [obj], "metadata": {
        "resourceVersion": obj["metadata"].get("resourceVersion", "")}}, res, "Object")


def _put(queue: asyncio.Queue[Any], item: Any) -> None:
    queue.put_nowait(item)


def _line(d: dict[str, Any]) -> bytes:
    return json.dumps(d, separators=(",", ":")).encode() + b"\n"
