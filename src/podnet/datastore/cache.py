"""Informer: list+watch a set of kinds into an in-memory cache, with one callback per batch.

The agent, the DNS server and the controllers build on this (the client-go informer /
Felix syncer pattern). Guarantees:
- `synced` is set after the first full list of every kind has been applied and handed
  to the callback; nothing should touch the kernel before that (Felix's rule).
- After that, the cache changes only through batches handed to the callback, in
  revision order, each event once; a batch with `resync=True` came from a relist
  (startup, or after `Compacted`): its events are the diff from the previous cache.
- Connection errors never end the informer: it backs off and resumes the watch from
  the last revision it applied, so nothing is lost or repeated.
- A callback that raises is logged; the informer goes on (a daemon must not die).

Two threads: the watch generator blocks, so a reader thread feeds a queue and the
main thread drains it, coalescing what arrives together into one batch.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from podnet.api.objects import Resource, is_namespaced
from podnet.api.selector import LabelSelector
from podnet.datastore.interface import Compacted, Datastore, DatastoreError, Event

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # kind, namespace, name
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Batch:
    events: tuple[Event, ...]
    revision: int  # the cache is consistent at this store revision after the batch
    resync: bool = False  # True: from a (re)list, events are the diff to the old cache


class _WatchEnded(Exception):
    def __init__(self, cause: BaseException | None):
        super().__init__(str(cause))
        self.cause = cause


class Informer:
    def __init__(self, store: Datastore, kinds: Sequence[str],
                 on_batch: Callable[[Batch], None] | None = None, *,
                 batch_window: float = 0.01, max_backoff: float = 5.0,
                 name: str = "informer") -> None:
        self.store = store
        self.kinds = tuple(kinds)
        self.on_batch = on_batch
        self.batch_window = batch_window
        self.max_backoff = max_backoff
        self.name = name
        self.synced = threading.Event()
        self.relists = 0  # how many lists were done (1 = only the initial one)
        self.reconnects = 0
        self._objects: dict[Key, Resource] = {}
        self._revision = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------
    def start(self) -> "Informer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"pn-ds-{self.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced.wait(timeout)

    def wait_until(self, predicate: Callable[["Informer"], bool], timeout: float = 10.0) -> bool:
        """Block until predicate(self) holds (checked after every batch) or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def __enter__(self) -> "Informer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- cache reads ----------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        ns = (namespace or "default") if is_namespaced(kind) else ""
        return self._objects.get((kind, ns, name))

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> list[Resource]:
        with self._cond:
            objs = [o for (k, ns, _), o in self._objects.items()
                    if k == kind and (namespace is None or ns == namespace)]
        objs = [o for o in objs if selector is None or selector.matches(o.labels)]
        return sorted(objs, key=lambda o: (o.namespace, o.name))

    # ---- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.1
        need_list = True
        list_revs: dict[str, int] = {}
        while not self._stop.is_set():
            try:
                if need_list:
                    list_revs = self._relist()
                    need_list = False
                self._watch(list_revs)
                backoff = 0.1
            except Compacted as e:
                log.info("%s: %s", self.name, e)
                need_list = True
            except DatastoreError as e:
                self.reconnects += 1
                log.warning("%s: datastore error, retrying in %.1fs: %s", self.name, backoff, e)
                self._stop.wait(backoff)
                backoff = min(self.max_backoff, backoff * 2)
            except Exception:  # noqa: BLE001 - never let the informer thread die
                log.exception("%s: unexpected error; relisting", self.name)
                need_list = True
                self._stop.wait(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    def _relist(self) -> dict[str, int]:
        new: dict[Key, Resource] = {}
        revs: dict[str, int] = {}
        for kind in self.kinds:
            res = self.store.list(kind)
            revs[kind] = res.revision
            for o in res.items:
                new[(o.kind, o.namespace, o.name)] = o
        rev = max(revs.values(), default=0)
        events = _diff(self._objects, new, rev)
        with self._cond:
            self._objects = new
            self._revision = max(self._revision, rev)
        self.relists += 1
        self._deliver(Batch(tuple(events), rev, resync=True))
        self.synced.set()
        return revs

    def _watch(self, list_revs: dict[str, int]) -> None:
        """Watch from the oldest list revision; events a kind's list already covered
        (revision <= that kind's list revision) are skipped."""
        start = max(self._revision_floor(list_revs), 0)
        q: "queue.Queue[Event | _WatchEnded]" = queue.Queue(maxsize=QUEUE_SIZE)
        stop = threading.Event()
        reader = threading.Thread(target=self._read, args=(start, q, stop), daemon=True,
                                  name=f"pn-ds-{self.name}-watch")
        reader.start()
        try:
            while not self._stop.is_set():
                try:
                    first = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                items = [first]
                if self.batch_window:
                    time.sleep(self.batch_window)  # let a burst arrive: one batch, one sync
                while True:
                    try:
                        items.append(q.get_nowait())
                    except queue.Empty:
                        break
                events = [i for i in items if isinstance(i, Event)]
                ended = next((i for i in items if isinstance(i, _WatchEnded)), None)
                self._apply([e for e in events if e.revision > list_revs.get(e.object.kind, 0)])
                if events:
                    list_revs.update({k: max(v, events[-1].revision) for k, v in list_revs.items()})
                if ended is not None:
                    if ended.cause is None:
                        raise DatastoreError("watch ended")
                    raise ended.cause
        finally:
            stop.set()
            reader.join(2.0)

    def _revision_floor(self, list_revs: dict[str, int]) -> int:
        return min(list_revs.values(), default=self._revision)

    def _read(self, start: int, q: "queue.Queue[Event | _WatchEnded]",
              stop: threading.Event) -> None:
        try:
            for ev in self.store.watch(start, kinds=self.kinds, stop=stop):
                if not _put(q, ev, stop):
                    return
            _put(q, _WatchEnded(None), stop)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            _put(q, _WatchEnded(e), stop)

    def _apply(self, events: Iterable[Event]) -> None:
        events = list(events)
        if not events:
            return
        with self._cond:
            for ev in events:
                key = (ev.object.kind, ev.object.namespace, ev.object.name)
                if ev.type == "DELETED":
                    self._objects.pop(key, None)
                else:
                    self._objects[key] = ev.object
            self._revision = max(self._revision, events[-1].revision)
        self._deliver(Batch(tuple(events), self._revision))

    def _deliver(self, batch: Batch) -> None:
        if self.on_batch is not None:
            try:
                self.on_batch(batch)
            except Exception:  # noqa: BLE001 - a consumer bug must not stop the feed
                log.exception("%s: callback failed on a batch at revision %d",
                              self.name, batch.revision)
        with self._cond:
            self._cond.notify_all()


def _put(q: "queue.Queue[Event | _WatchEnded]", item: "Event | _WatchEnded",
         stop: threading.Event) -> bool:
    """Put into the bounded queue unless stopped first. A full queue makes the reader
    wait: a slow consumer slows the watch instead of growing memory, and the store
    keeps the backlog (or, if it compacts meanwhile, the informer relists)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _diff(old: dict[Key, Resource], new: dict[Key, Resource], rev: int) -> list[Event]:
    out: list[Event] = []
    for key, obj in new.items():
        prev = old.get(key)
        if prev is None:
            out.append(Event("ADDED", rev, obj))
        elif prev.resource_version != obj.resource_version or prev != obj:
            out.append(Event("MODIFIED", rev, obj))
    for key, obj in old.items():
        if key not in new:
            out.append(Event("DELETED", rev, obj))
    return out
