"""Watch over HTTP, in process: a real aiohttp server over a real SQLite store (no root).

resourceVersion semantics, selectors moving objects in and out, 410 Expired after
compaction, bookmarks, timeoutSeconds, sendInitialEvents, and one store watch per kind
however many watchers there are (issue 14 §2).
"""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from podnet.apiserver import watch as watch_mod
from podnet.apiserver.auth import TokenTable
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.http_app import ApiApp
from podnet.apiserver.write import Writer
from podnet.datastore.interface import open_datastore

H = {"Authorization": "Bearer admin-token"}
SVC = "/api/v1/namespaces/default/services"


@pytest.fixture
def store(tmp_path):
    s = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    ensure_default_namespaces(Writer(s))
    yield s
    s.close()


def run(store, body):
    async def main():
        api = ApiApp(store, TokenTable('admin-token,admin,1,"system:masters"'))
        async with TestClient(TestServer(api.app())) as c:
            return await body(c, api)
    return asyncio.run(main())


def svc(name, **labels):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels}, "spec": {"ports": [{"port": 80}]}}


async def create(c, name, **labels):
    r = await c.post(SVC, json=svc(name, **labels), headers=H)
    assert r.status == 201, await r.text()
    return await r.json()


async def events(resp, n, timeout=10.0):
    out = []
    while len(out) < n:
        line = await asyncio.wait_for(resp.content.readline(), timeout)
        if not line:
            break
        out.append(json.loads(line))
    return out


def test_watch_from_zero_lists_then_follows_with_selector_transitions(store):
    async def body(c, api):
        await create(c, "a", app="web")
        await create(c, "b", app="db")
        w = await c.get(SVC + "?watch=true&labelSelector=app%3Dweb", headers=H)
        first = await events(w, 1)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in first] == [("ADDED", "a")]
        assert first[0]["object"]["kind"] == "Service" and first[0]["object"]["apiVersion"] == "v1"
        await create(c, "c", app="web")
        r = await c.patch(SVC + "/a", data=json.dumps({"metadata": {"labels": {"app": "gone"}}}),
                          headers={**H, "Content-Type": "application/merge-patch+json"})
        assert r.status == 200
        r = await c.patch(SVC + "/b", data=json.dumps({"metadata": {"labels": {"app": "web"}}}),
                          headers={**H, "Content-Type": "application/merge-patch+json"})
        more = await events(w, 3)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in more] == [
            ("ADDED", "c"), ("DELETED", "a"), ("ADDED", "b")]
        w.close()
    run(store, body)


def test_watch_from_a_resource_version_replays_what_came_after(store):
    async def body(c, api):
        a = await create(c, "a")
        await create(c, "b")
        await c.delete(SVC + "/a", headers=H)
        rv = a["metadata"]["resourceVersion"]
        w = await c.get(f"{SVC}?watch=1&resourceVersion={rv}", headers=H)
        got = await events(w, 2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "b"), ("DELETED", "a")]
        w.close()
    run(store, body)


def test_a_compacted_resource_version_is_410_expired(store):
    w = Writer(store)
    from podnet.api.objects import from_dict
    first = w.create(from_dict({**svc("a"), "metadata": {"name": "a", "namespace": "default"}}))
    for i in range(3):
        w.create(from_dict({**svc(f"x{i}"), "metadata": {"name": f"x{i}", "namespace": "default"}}))
    store.compact(store.revision())

    async def body(c, api):
        r = await c.get(f"{SVC}?watch=true&resourceVersion={first.resource_version}", headers=H)
        assert r.status == 200
        got = await events(r, 1)
        assert got[0]["type"] == "ERROR"
        assert got[0]["object"]["code"] == 410 and got[0]["object"]["reason"] == "Expired"
    run(store, body)


def test_timeout_bookmarks_and_initial_events_end(store, monkeypatch):
    monkeypatch.setattr(watch_mod, "BOOKMARK_EVERY", 0.2)

    async def body(c, api):
        await create(c, "a")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await c.get(SVC + "?watch=true&timeoutSeconds=1&allowWatchBookmarks=true"
                              "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", headers=H)
        got = await events(r, 100, timeout=5)
        assert loop.time() - t0 < 4, "timeoutSeconds=1 did not end the stream"
        assert got[0]["type"] == "ADDED"
        assert got[1]["type"] == "BOOKMARK"
        assert got[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert any(e["type"] == "BOOKMARK" and "annotations" not in e["object"]["metadata"] for e in got[2:])
    run(store, body)


def test_many_watchers_of_every_kind_share_one_store_watch(store):
    calls = []
    real = store.watch

    def counting(*a, **kw):
        calls.append(a[1] if len(a) > 1 else kw.get("kinds"))
        return real(*a, **kw)
    store.watch = counting

    async def body(c, api):
        ws = [await c.get(SVC + "?watch=true", headers=H) for _ in range(10)]
        pods = await c.get("/api/v1/namespaces/default/pods?watch=true", headers=H)
        await create(c, "a")
        for w in ws:
            got = await events(w, 1)
            assert got[0]["object"]["metadata"]["name"] == "a"
            w.close()
        pods.close()
    run(store, body)
    assert calls == [None]   # one watch of every kind, not one per kind or per watcher


def test_list_continue_and_table(store):
    async def body(c, api):
        for n in "abcde":
            await create(c, n, app="web")
        r = await c.get(SVC + "?limit=2", headers=H)
        page = await r.json()
        assert [i["metadata"]["name"] for i in page["items"]] == ["a", "b"]
        assert page["metadata"]["remainingItemCount"] == 3
        r = await c.get(SVC + f"?limit=10&continue={page['metadata']['continue']}", headers=H)
        assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["c", "d", "e"]
        r = await c.get(SVC, headers={**H, "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        t = await r.json()
        assert t["kind"] == "Table" and [row["cells"][0] for row in t["rows"]] == list("abcde")
    run(store, body)


def test_a_slow_client_gets_408_and_holds_up_no_one(store, monkeypatch):
    from podnet.apiserver import http_app
    monkeypatch.setattr(http_app, "BODY_TIMEOUT", 1.0)

    async def body(c, api):
        host, port = c.server.host, c.server.port
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"POST {SVC} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-token\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"kind\"".encode())
        await writer.drain()
        t0 = asyncio.get_running_loop().time()
        r = await c.get(SVC, headers=H)               # served meanwhile
        assert r.status == 200 and asyncio.get_running_loop().time() - t0 < 1.0
        status = await asyncio.wait_for(reader.readline(), 5)
        assert b" 408 " in status
        writer.close()
        r = await c.get(SVC + "/svc", headers=H)
        assert r.status == 404                        # nothing half-written
    run(store, body)
