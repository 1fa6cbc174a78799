"""Node cleanup (issue 15 §1), as Calico kube-controllers' node controller: once a Node is
deleted (a node removed from the cluster, `kubectl delete node`), the IPAM state that was
its own goes too. Its blocks (affinity `host:<node>`) are deleted once they are empty: the
IPAM garbage collector (ipam_gc.py) frees the addresses of its pods, which are leaked from
the moment the node is gone, and this controller then gives the blocks back to the pools.

A block must be seen orphaned by sweeps spanning `grace` seconds before it goes, so a node
that is deleted and registers again (a re-provisioned machine of the same name) keeps its
blocks; each delete is compare-and-swap on the block's revision, so a block that got an
allocation or a new owner meanwhile is kept. A block of a deleted node that still holds
addresses of live pods (other nodes' pods borrow from it) stays until they are gone.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

from podnet.datastore.interface import Conflict, Datastore, NotFound
from podnet.ipam.allocator import Allocator
from podnet.ipam.blocks import KIND

log = logging.getLogger("podnet.controllers.node_cleanup")
KINDS = ("Node", "IPAMBlock")   # what a sweep reads
GRACE = 60.0      # seconds a block must stay orphaned (its node gone) before it is deleted
INTERVAL = 15.0   # seconds between sweeps


class NodeCleanup:
    def __init__(self, store: Datastore, grace: float = GRACE, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.grace = grace
        self.interval = interval
        self.clock = clock
        self._orphaned_since: dict[tuple[str, str], float] = {}   # (block, node) -> first seen
        self.deleted = 0

    def sweep(self) -> list[str]:
        """One pass: note the blocks whose node is gone, delete those that have been
        orphaned for `grace` and are empty. Returns the CIDRs deleted."""
        nodes = {n.name for n in self.store.list("Node").items}
        blocks = Allocator(self.store, "", release_grace=math.inf).blocks()
        orphaned = {(b.name, b.node): b for b in blocks if b.node and b.node not in nodes}
        now = self.clock()
        self._orphaned_since = {k: self._orphaned_since.get(k, now) for k in orphaned}
        out = []
        for key, b in orphaned.items():
            if b.allocations or now - self._orphaned_since[key] < self.grace:
                continue
            try:
                self.store.delete(KIND, "", b.name, b.revision)
            except (Conflict, NotFound):
                continue   # allocated from, taken over or deleted meanwhile: look again next time
            log.info("deleted block %s of deleted node %s", b.cidr, b.node)
            self._orphaned_since.pop(key, None)
            out.append(str(b.cidr))
        self.deleted += len(out)
        return out

    def run(self, stop: threading.Event) -> None:
        while True:
            self.sweep()
            if stop.wait(self.interval):
                return
