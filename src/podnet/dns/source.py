"""Keep the zone in step with the store: list + watch into a `ClusterState`, rebuild the zone.

Two threads, so a burst of events costs one rebuild: the watcher applies events to the
state and marks it dirty; the builder waits for dirty, lets the burst settle for a few
milliseconds, copies the state and builds a new zone off to the side, then hands it to
`on_zone` (which swaps it in atomically). A compacted watch relists; a store error is
retried every second while the last good zone keeps being served.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from podnet.calc.model import ClusterState
from podnet.datastore.interface import Compacted, Datastore
from podnet.dns.records import Zone, ZoneBuilder

log = logging.getLogger(__name__)

KINDS = ("Namespace", "Service", "EndpointSlice", "Pod")
SETTLE = 0.02     # seconds a burst of events may take before we rebuild
RETRY = 1.0


class ZoneFeed:
    def __init__(self, store: Datastore, on_zone: Callable[[Zone], None], origin: str = "cluster.local",
                 ttl: int = 30, pods_mode: str = "insecure", stop: threading.Event | None = None):
        self.store = store
        self.on_zone = on_zone
        self.builder = ZoneBuilder(origin, ttl, pods_mode)
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._state = ClusterState()
        self._revision = 0
        self._dirty = threading.Event()
        self._listed = False
        self.rebuilds = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._watch_loop, "dns-watch"), (self._build_loop, "dns-build")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def join(self, timeout: float | None = None) -> None:
        self._dirty.set()
        for t in self._threads:
            t.join(timeout)

    # ---- the watcher --------------------------------------------------------------------
    def _list(self) -> int:
        state = ClusterState()
        revision = 0
        for kind in KINDS:
            res = self.store.list(kind)
            revision = max(revision, res.revision)
            for obj in res.items:
                state.put(obj)
        with self._lock:
            self._state, self._revision, self._listed = state, revision, True
        self._dirty.set()
        return revision

    def _watch_loop(self) -> None:
        while not self.stop.is_set():
            try:
                rev = self._list()
                for ev in self.store.watch(rev, KINDS, stop=self.stop):
                    with self._lock:
                        if ev.type == "DELETED":
                            self._state.remove(ev.object.kind, ev.object.namespace, ev.object.name)
                        else:
                            self._state.put(ev.object)
                        self._revision = ev.revision
                    self._dirty.set()
            except Compacted as e:
                log.info("dns: watch compacted (%s); relisting", e)
            except Exception as e:  # noqa: BLE001 - keep serving the last zone, retry
                log.warning("dns: datastore error: %s; retrying in %.0fs", e, RETRY)
                self.stop.wait(RETRY)

    # ---- the builder --------------------------------------------------------------------
    def _build_loop(self) -> None:
        while not self.stop.is_set():
            if not self._dirty.wait(0.5):
                continue
            if self.stop.is_set():
                return
            self.stop.wait(SETTLE)
            self._dirty.clear()
            with self._lock:
                if not self._listed:
                    continue
                snap = ClusterState(objects={k: dict(v) for k, v in self._state.objects.items()})
                revision = self._revision
            try:
                zone = self.builder.build(snap, serial=max(1, revision))
            except Exception:  # noqa: BLE001 - a bad object must not stop DNS
                log.exception("dns: building the zone failed; keeping the previous one")
                continue
            self.rebuilds += 1
            self.on_zone(zone)
