"""The web view's live picture: the store's objects kept by an Informer (list + watch),
and one wake-up queue per open event stream (server-sent events).

Each batch the watch delivers bumps `version` and wakes every stream, which then sends
the whole topology again: a lab's picture is small, and a stream that sends snapshots
cannot get out of step with the store (a dropped wake-up loses nothing: the next
snapshot carries every change).
"""
from __future__ import annotations

import asyncio
from typing import Any

from podnet.calc.model import ClusterState
from podnet.cli.ui import views
from podnet.datastore.cache import Batch, Informer
from podnet.datastore.interface import Datastore


class Live:
    def __init__(self, store: Datastore, lab: dict[str, Any] | None) -> None:
        self.lab = lab
        self.version = 0
        self.informer = Informer(store, views.KINDS, self._on_batch, batch_window=0.05, name="ui")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: set[asyncio.Queue[int]] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()

    # ---- reads (from the cache) -----------------------------------------------------
    def topology(self) -> dict[str, Any]:
        return views.topology(self.informer.list, self.lab, self.informer.revision)

    def state(self) -> ClusterState:
        return ClusterState.from_objects(o for k in views.KINDS for o in self.informer.list(k))

    # ---- streams --------------------------------------------------------------------
    def subscribe(self) -> "asyncio.Queue[int]":
        q: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        self._streams.add(q)
        return q

    def unsubscribe(self, q: "asyncio.Queue[int]") -> None:
        self._streams.discard(q)

    def _on_batch(self, _batch: Batch) -> None:  # the informer's thread
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.version += 1
        for q in list(self._streams):
            if q.empty():
                q.put_nowait(self.version)
