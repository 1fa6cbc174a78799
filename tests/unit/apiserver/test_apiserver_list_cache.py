"""Lists served from the shared watch cache (issue 14 §5), over real HTTP and a real SQLite store.

kube-apiserver's semantics: resourceVersion "0" is "any" (the cache as it is, maybe
behind the store); a revision N is "not older than N"; unset is a consistent read, served
from the cache only when the cache is at the store's current revision. The cache is made
stale on purpose by stopping its store watch, then the store is written directly.
"""
from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from podnet.api.objects import from_dict
from podnet.apiserver.auth import TokenTable
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.http_app import ApiApp
from podnet.apiserver.watch_cache import wait_until
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


def svc(name, **labels):
    return from_dict({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": name, "namespace": "default", "labels": labels},
                      "spec": {"ports": [{"port": 80}]}})


def counting(store):
    """Count the store's list calls (the real list still runs)."""
    calls = []
    real = store.list

    def list_(kind, namespace=None, selector=None):
        calls.append(kind)
        return real(kind, namespace, selector)
    store.list = list_
    return calls


def run(store, body):
    async def main():
        api = ApiApp(store, TokenTable('admin-token,admin,1,"system:masters"'))
        async with TestClient(TestServer(api.app())) as c:
            return await body(c, api)
    return asyncio.run(main())


async def names(c, query=""):
    r = await c.get(SVC + query, headers=H)
    assert r.status == 200, await r.text()
    d = await r.json()
    return [o["metadata"]["name"] for o in d["items"]], int(d["metadata"]["resourceVersion"]), d


def test_list_semantics_with_a_stale_cache(store):
    w = Writer(store)
    w.create(svc("a", app="web"))
    w.create(svc("b", app="db"))

    async def body(c, api):
        cache = api.hub.caches.get("Service")
        rev = store.revision()
        assert await asyncio.to_thread(wait_until, lambda: cache.revision >= rev, 10.0)
        caches = api.hub.caches
        caches.stop.set()              # the caches stop following the store
        assert caches.thread is not None
        caches.thread.join(10)
        assert not caches.thread.is_alive()
        w.create(svc("c", app="web"))  # written behind the cache's back
        now = store.revision()
        calls = counting(store)
        # "0": any version, served from the cache as it is
        got, at, _ = await names(c, "?resourceVersion=0")
        assert (got, at, calls) == (["a", "b"], rev, [])
        got, _, _ = await names(c, "?resourceVersion=0&labelSelector=app%3Dweb")
        assert got == ["a"] and calls == []
        # not older than the cache's revision: the cache; than the store's: the store
        got, _, _ = await names(c, f"?resourceVersion={rev}")
        assert got == ["a", "b"] and calls == []
        got, at, _ = await names(c, f"?resourceVersion={now}")
        assert (got, at, calls) == (["a", "b", "c"], now, ["Service"])
        # unset: consistent, the cache is behind, so the store
        got, at, _ = await names(c)
        assert (got, at) == (["a", "b", "c"], now) and len(calls) == 2
        # Exact always goes to the store
        got, _, _ = await names(c, f"?resourceVersion={now}&resourceVersionMatch=Exact")
        assert got == ["a", "b", "c"] and len(calls) == 3
    run(store, body)


def test_consistent_list_from_a_current_cache_and_its_pages(store):
    w = Writer(store)
    for n in ("a", "b", "c", "d", "e"):
        w.create(svc(n))

    async def body(c, api):
        cache = api.hub.caches.get("Service")
        rev = store.revision()
        assert await asyncio.to_thread(wait_until, lambda: cache.revision >= rev, 10.0)
        calls = counting(store)
        got, at, _ = await names(c)
        assert (got, at, calls) == (["a", "b", "c", "d", "e"], rev, [])
        pages, query = [], "?limit=2"
        while True:
            got, _, d = await names(c, query)
            pages.append(got)
            if not d["metadata"].get("continue"):
                break
            query = "?limit=2&continue=" + d["metadata"]["continue"]
        assert pages == [["a", "b"], ["c", "d"], ["e"]] and calls == []
        # a write: the next unset-RV list sees it (from the store, or the cache once it caught up)
        w.create(svc("f"))
        got, at, _ = await names(c)
        assert got[-1] == "f" and at == store.revision()
        got, _, _ = await names(c, "?resourceVersion=0&limit=1")
        assert got == ["a"]
    run(store, body)


@pytest.mark.parametrize("field", ["", "metadata.name!=c"])
def test_pages_of_any_size_add_up_to_the_whole_list(store, field):
    """A page is cut before the objects are copied (when no field selector needs the copies):
    every limit gives the whole list in order, each page's remainingItemCount is what is left."""
    w = Writer(store)
    names_ = [f"s{i:02d}" for i in range(11)] + ["c"]
    for n in names_:
        w.create(svc(n))
    want = sorted(n for n in names_ if not (field and n == "c"))

    async def body(c, api):
        cache = api.hub.caches.get("Service")
        rev = store.revision()
        assert await asyncio.to_thread(wait_until, lambda: cache.revision >= rev, 10.0)
        sel = f"&fieldSelector={field}" if field else ""
        for limit in (1, 2, 5, 11, 12, 13):
            seen, query = [], f"?limit={limit}{sel}"
            while True:
                got, _, d = await names(c, query)
                seen += got
                md = d["metadata"]
                if not md.get("continue"):
                    assert "remainingItemCount" not in md
                    break
                assert len(got) == limit and md["remainingItemCount"] == len(want) - len(seen), (limit, md)
                query = f"?limit={limit}{sel}&continue=" + md["continue"]
            assert seen == want, limit
    run(store, body)
