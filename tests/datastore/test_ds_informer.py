"""Informer: list+watch into a cache, on every backend."""
from __future__ import annotations

import threading
import time

from podnet.api.objects import from_dict
from podnet.datastore.cache import Batch, Informer
from builders import make_pod, make_service


def pod(name: str, ns: str = "default", **labels: str):
    return make_pod(ns, name, [], labels)


def svc(name: str, ns: str = "default"):
    return make_service(ns, name)


def same_as_store(inf: Informer, store, kinds=("Pod", "Service")) -> bool:
    return all(inf.list(k) == store.list(k).items for k in kinds)


def test_initial_sync_then_live_batches(backend):
    store = backend.open()
    store.create(pod("a", app="web"))
    store.create(svc("s"))
    store.create(from_dict({"kind": "Node", "metadata": {"name": "n1"}}))  # not watched
    batches: list[Batch] = []
    with Informer(backend.open(), ["Pod", "Service"], batches.append) as inf:
        assert inf.wait_synced(10)
        assert batches[0].resync
        assert sorted((e.type, e.object.name) for e in batches[0].events) == [
            ("ADDED", "a"), ("ADDED", "s")]
        assert inf.get("Pod", "default", "a").labels == {"app": "web"}
        assert inf.get("Node", "", "n1") is None
        b = store.create(pod("b", app="db"))
        store.update(b.with_metadata(labels={"app": "web"}))
        gone = store.delete("Service", "default", "s")
        # Up to the last write it watches (through the API, the delete's own side effects,
        # the ClusterIP's release, come after it: see docs/design/datastore.md).
        assert inf.wait_until(lambda i: i.revision >= gone.resource_version, 10)
        assert same_as_store(inf, store)
        live = [(e.type, e.object.name) for bt in batches[1:] for e in bt.events]
        assert live == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "s")]
        assert not any(bt.resync for bt in batches[1:])
        from podnet.api.selector import LabelSelector
        assert [p.name for p in inf.list("Pod", selector=LabelSelector.parse("app=web"))] == ["a", "b"]
        assert inf.relists == 1


def test_survives_reconnect_without_loss_or_repeat(backend):
    store = backend.open()
    seen: list[str] = []
    lock = threading.Lock()

    def on_batch(bt: Batch) -> None:
        with lock:
            seen.extend(e.object.name for e in bt.events if e.type == "ADDED")
        if len(seen) == 7:
            raise RuntimeError("a consumer bug must not stop the informer")

    inf = Informer(backend.open(), ["Pod"], on_batch, max_backoff=0.5).start()
    try:
        assert inf.wait_synced(10)
        writer = backend.open()

        def write():
            for i in range(60):
                for _ in range(200):
                    try:
                        writer.create(pod(f"p{i}"))
                        break
                    except Exception:
                        time.sleep(0.05)
                time.sleep(0.005)

        t = threading.Thread(target=write)
        t.start()
        time.sleep(0.1)
        backend.disrupt()
        t.join(60)
        assert inf.wait_until(lambda i: len(i.list("Pod")) == 60, 20)
        assert sorted(seen) == sorted(f"p{i}" for i in range(60))  # each exactly once
        assert same_as_store(inf, store, ("Pod",))
        assert inf.reconnects >= 1, "the disruption never broke the informer's watch"
        assert inf.relists == 1  # it resumed the watch, no relist
    finally:
        inf.stop()


def test_relists_after_compaction(backend):
    """The informer falls behind (its consumer is stuck, the connection breaks), the
    store compacts past it: it relists, and the cache ends up equal to the store."""
    store = backend.open()
    for i in range(5):
        store.create(pod(f"old{i}"))
    gate = threading.Event()
    batches: list[Batch] = []

    def on_batch(bt: Batch) -> None:
        batches.append(bt)
        if not bt.resync:
            gate.wait(30)

    inf = Informer(backend.open(), ["Pod"], on_batch).start()
    try:
        assert inf.wait_synced(10)
        store.create(pod("first-live"))
        deadline = time.time() + 10
        while len(batches) < 2 and time.time() < deadline:
            time.sleep(0.01)
        backend.disrupt()  # etcd, API server: the stream breaks; SQLite: the queue fills
        writer = backend.open()
        n = 50 if backend.name in ("etcd", "kubernetes") else 3000
        for i in range(n):
            writer.create(pod(f"new{i}"))
        writer.delete("Pod", "default", "old0")
        backend.compact(writer, writer.revision())
        gate.set()
        assert inf.wait_until(lambda i: i.relists >= 2 and i.revision >= writer.revision(), 30)
        assert same_as_store(inf, store, ("Pod",))
        resync = [bt for bt in batches[1:] if bt.resync]
        assert resync and any(e.type == "DELETED" and e.object.name == "old0"
                              for bt in resync for e in bt.events)
    finally:
        gate.set()
        inf.stop()
