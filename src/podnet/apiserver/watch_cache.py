"""The watch caches: one store watch per server, shared by every watcher (kube-apiserver's watch cache).

A `KindCache` lists its kind once, then follows one store watch of every kind that the
server's `Caches` runs in a thread of its own (one poller per server, not one per kind):
it keeps the latest state of every object (the initial events of a watch from "0" come
from here) and the last EVENTS events (a watch from a recent resourceVersion is served
from here). A subscriber is a callback, called in the shared watch's thread for each event in
revision order; a watch from a revision older than what the cache holds gets the store's
own watch from that revision instead (Compacted, and so 410, when the store forgot it).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from podnet.api.objects import Resource
from podnet.api.selector import LabelSelector
from podnet.datastore.interface import Compacted, Datastore, DatastoreError, Event

log = logging.getLogger("podnet.apiserver.watch")
EVENTS = 2000
RETRY = 0.5

Key = tuple[str, str]
Sink = Callable[[str, int, Resource, "Resource | None"], None]  # type, revision, object, previous


@dataclass
class Subscription:
    sink: Sink
    after: int               # deliver only events with a revision above this
    closed: bool = False


def key_of(o: Resource) -> Key:
    return o.namespace, o.name


class KindCache:
    """The objects and the last events of one kind, fed by the Caches' one store watch."""

    def __init__(self, store: Datastore, kind: str):
        self.store, self.kind = store, kind
        self.lock = threading.Lock()
        self.objects: dict[Key, Resource] = {}
        self.events: collections.deque[tuple[Event, Resource | None]] = collections.deque(maxlen=EVENTS)
        self.floor = 0       # every event of the kind above this revision is in self.events
        self.revision = 0    # the cache is complete up to here
        self.subs: list[Subscription] = []
        self.ready = threading.Event()
        self.sorted: list[Resource] | None = None   # the objects by key, until the next change

    def relist(self) -> None:
        """List the kind and start over from there (the lock is held meanwhile, so the
        shared watch's events of this kind wait: those the list holds are then skipped)."""
        with self.lock:
            self.ready.clear()
            got = self.store.list(self.kind)
            self.objects = {key_of(o): o for o in got.items}
            self.sorted = None
            self.events.clear()
            self.floor = self.revision = got.revision
            for s in self.subs:  # they may have missed events: they must relist too
                s.closed = True
            self.subs = []
            self.ready.set()

    def apply(self, ev: Event) -> None:
        """One event of the kind, from the shared watch. Dropped when the cache is not
        ready (its coming list, made after the event was committed, holds it) or already
        holds it (the list was at its revision or later)."""
        with self.lock:
            if not self.ready.is_set() or ev.revision <= self.revision:
                return
            k = key_of(ev.object)
            prev = self.objects.get(k)
            self.sorted = None
            if ev.type == "DELETED":
                self.objects.pop(k, None)
            else:
                self.objects[k] = ev.object
            if len(self.events) == self.events.maxlen:
                self.floor = self.events[0][0].revision
            self.events.append((ev, prev))
            self.revision = ev.revision
            subs = list(self.subs)
        for s in subs:
            if not s.closed and ev.revision > s.after:
                s.sink(ev.type, ev.revision, ev.object, prev)

    def subscribe(self, sink: Sink, after: int | None, timeout: float = 10.0) -> tuple[Subscription, list[Resource], int]:
        """Register `sink`. after None: (sub, every current object, the revision they are
        at); else the events after `after` are replayed into sink first. Raises
        Compacted when `after` is older than the cache holds."""
        if not self.ready.wait(timeout):
            raise DatastoreError(f"the watch cache of {self.kind} is not ready")
        with self.lock:
            if after is None:
                sub = Subscription(sink, self.revision)
                self.subs.append(sub)
                return sub, sorted(self.objects.values(), key=key_of), self.revision
            if after < self.floor:
                raise Compacted(after, self.floor)
            sub = Subscription(sink, after)
            for ev, prev in self.events:
                if ev.revision > after:
                    sink(ev.type, ev.revision, ev.object, prev)
            sub.after = max(after, self.revision)
            self.subs.append(sub)
            return sub, [], self.revision

    def snapshot(self, namespace: str | None, selector: LabelSelector | None,
                 at_least: int | None = None) -> tuple[list[Resource], int] | None:
        """(the kind's objects in `namespace` (None: all) matching `selector`, sorted by
        (namespace, name), and the revision they are at), or None when the cache cannot
        answer: not ready, or `at_least` given and the cache has not been shown to be at
        that store revision yet (its revision is that of the last event of its kind).
        The list may be the cache's own: the caller must not change it."""
        if not self.ready.is_set():
            return None
        with self.lock:
            if at_least is not None and self.revision < at_least:
                return None
            if self.sorted is None:   # sorted once per change, not once per list or page
                self.sorted = sorted(self.objects.values(), key=key_of)
            objs, rev = self.sorted, self.revision
        if namespace is not None:
            objs = [o for o in objs if o.namespace == namespace]
        if selector is not None:
            objs = [o for o in objs if selector.matches(o.labels)]
        return objs, rev

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        with self.lock:
            if sub in self.subs:
                self.subs.remove(sub)


class Caches:
    """The KindCaches of one server, made on first use, all fed by one store watch of
    every kind (a thread of its own): one poller per server instead of one per kind."""

    def __init__(self, store: Datastore):
        self.store = store
        self.lock = threading.Lock()
        self.by_kind: dict[str, KindCache] = {}
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.at = 0          # the shared watch's position: every cache lists at or after it

    def get(self, kind: str) -> KindCache:
        with self.lock:
            c = self.by_kind.get(kind)
            if c is not None:
                return c
            if self.thread is None:
                self.at = self._revision()
                self.thread = threading.Thread(target=self._run, name="watch-caches", daemon=True)
                self.thread.start()
            c = self.by_kind[kind] = KindCache(self.store, kind)
        self._relist_soon(c)
        return c

    def _revision(self) -> int:
        while not self.stop.is_set():
            try:
                return self.store.revision()
            except DatastoreError as e:
                log.warning("watch caches: no store revision: %s; retrying", e)
                self.stop.wait(RETRY)
        return 0

    def _relist_soon(self, c: KindCache) -> None:
        def run() -> None:
            while not self.stop.is_set():
                try:
                    c.relist()
                    return
                except DatastoreError as e:
                    log.warning("list of %s for its watch cache: %s; retrying", c.kind, e)
                    self.stop.wait(RETRY)
        threading.Thread(target=run, name=f"relist-{c.kind}", daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                for ev in self.store.watch(self.at, None, stop=self.stop):
                    c = self.by_kind.get(ev.object.kind)
                    if c is not None:
                        c.apply(ev)
                    self.at = ev.revision
            except Compacted:
                self._restart()
            except DatastoreError as e:
                log.warning("the watch caches' watch broke at %d: %s; resuming", self.at, e)
            except Exception:  # noqa: BLE001 - keep serving; a relist repairs the state
                log.exception("the watch caches' watch")
                self._restart()
            self.stop.wait(RETRY)

    def _restart(self) -> None:
        """From the store's current revision, every cache listed again after it."""
        self.at = self._revision()
        with self.lock:
            caches = list(self.by_kind.values())
        for c in caches:
            c.ready.clear()
            self._relist_soon(c)

    def close(self) -> None:
        self.stop.set()


def wait_until(pred: Callable[[], Any], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False
