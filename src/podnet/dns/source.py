"""Keep the zone in step with the store: an Informer (list + watch) feeds a `ClusterState`,
a builder thread turns it into zones.

The informer hands over batches (a burst of events, or the diff of a relist) on its own
thread; we apply them to our state and mark it dirty. The builder waits for dirty, lets a
burst settle for a few milliseconds, copies the state and builds the next zone off to the
side (incrementally: `ZoneBuilder`), then hands it to `on_zone`, which swaps it in
atomically. Store errors are the informer's business (it backs off and resumes); the last
good zone keeps being served meanwhile.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from podnet.calc.model import ClusterState
from podnet.datastore.cache import Batch, Informer
from podnet.datastore.interface import Datastore
from podnet.dns.builder import ZoneBuilder
from podnet.dns.records import Zone

log = logging.getLogger(__name__)

KINDS = ("Namespace", "Service", "EndpointSlice", "Pod")
SETTLE = 0.02     # seconds a burst of events may take before we rebuild


class ZoneFeed:
    def __init__(self, store: Datastore, on_zone: Callable[[Zone], None], origin: str = "cluster.local",
                 ttl: int = 30, pods_mode: str = "insecure", stop: threading.Event | None = None):
        self.on_zone = on_zone
        self.builder = ZoneBuilder(origin, ttl, pods_mode)
        self.stop = stop or threading.Event()
        self.informer = Informer(store, KINDS, self._on_batch, batch_window=SETTLE, name="dns")
        self._lock = threading.Lock()
        self._state = ClusterState()
        self._revision = 0
        self._dirty = threading.Event()
        self._listed = False
        # keys changed since the last build; None: rebuild everything (after a relist)
        self._changed: set[tuple[str, str, str]] | None = None
        self.rebuilds = 0
        self.last_build_full = False  # the zone last handed to on_zone was built from scratch
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.informer.start()
        self._thread = threading.Thread(target=self._build_loop, name="dns-build", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.informer.stop(timeout or 5.0)
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _on_batch(self, batch: Batch) -> None:
        with self._lock:
            for ev in batch.events:
                if ev.type == "DELETED":
                    self._state.remove(ev.object.kind, ev.object.namespace, ev.object.name)
                else:
                    self._state.put(ev.object)
            self._revision = max(self._revision, batch.revision)
            self._listed = self._listed or batch.resync
            if batch.resync:
                self._changed = None
            elif self._changed is not None:
                self._changed.update((e.object.kind, e.object.namespace, e.object.name) for e in batch.events)
        self._dirty.set()

    # ---- the builder --------------------------------------------------------------------
    def _build_loop(self) -> None:
        while not self.stop.is_set():
            if not self._dirty.wait(0.5):
                continue
            if self.stop.is_set():
                return
            self._dirty.clear()
            with self._lock:
                if not self._listed:
                    continue
                snap = ClusterState(objects={k: dict(v) for k, v in self._state.objects.items()})
                revision, changed, self._changed = self._revision, self._changed, set()
            try:
                zone = self.builder.build(snap, serial=max(1, revision), changed=changed)
            except Exception:  # noqa: BLE001 - a bad object must not stop DNS
                log.exception("dns: building the zone failed; keeping the previous one")
                with self._lock:
                    self._changed = None  # the builder's tables may be half-updated: rebuild all next
                continue
            self.rebuilds += 1
            self.last_build_full = changed is None
            self.on_zone(zone)
