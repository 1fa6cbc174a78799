"""IPAM garbage collection (issue 17 §4), as Calico kube-controllers' IPAM controller: an
address whose pod or node is gone (a CNI DEL that never ran: a crashed node, a killed
kubelet) is released automatically once it has been seen leaked for a grace period.

Each sweep reads Pods and Nodes, then the blocks, and classifies every allocation with the
same rules as `podnet ipam check` (ipam/audit.py). An allocation must be seen leaked by
sweeps spanning `grace` seconds before it is freed: a pod created between the two reads, or
one whose CNI ADD has allocated before the sweep saw the pod, is live again by the next
sweep. The release itself is compare-and-swap on the handle seen (Allocator.release_held),
so an address freed and handed to a new pod meanwhile is never taken from it.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from typing import Callable

from podnet.api.objects import Node, Pod
from podnet.datastore.interface import Datastore
from podnet.ipam.allocator import Allocator
from podnet.ipam.audit import LAB_NETWORK, LEAKED, audit
from podnet.ipam.cidr import Address

log = logging.getLogger("podnet.controllers.ipam_gc")
KINDS = ("Pod", "Node", "IPAMBlock")   # what a sweep reads
GRACE = 60.0      # seconds an allocation must stay leaked before it is freed
INTERVAL = 15.0   # seconds between sweeps


class IpamGarbageCollector:
    def __init__(self, store: Datastore, grace: float = GRACE, interval: float = INTERVAL,
                 network: str = LAB_NETWORK, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.grace = grace
        self.interval = interval
        self.network = network
        self.clock = clock
        self._leaked_since: dict[tuple[Address, str], float] = {}
        self.released = 0

    def sweep(self) -> list[Address]:
        """One pass: note what is leaked now, free what has been leaked for `grace`."""
        pods = [p for p in self.store.list("Pod").items if isinstance(p, Pod)]
        nodes = [n for n in self.store.list("Node").items if isinstance(n, Node)]
        # An infinite grace: the allocator never hands empty blocks back from here.
        allocator = Allocator(self.store, "", release_grace=math.inf)
        report = audit(allocator.blocks(), pods, nodes, self.network)
        now = self.clock()
        leaked = {(ipaddress.ip_address(a.address), a.handle): a.reason for a in report.of(LEAKED)}
        self._leaked_since = {k: self._leaked_since.get(k, now) for k in leaked}
        due = {addr: handle for (addr, handle), since in self._leaked_since.items()
               if now - since >= self.grace}
        if not due:
            return []
        freed = allocator.release_held(due)
        for addr in freed:
            log.info("released leaked %s (%s: %s)", addr, due[addr], leaked[(addr, due[addr])])
            self._leaked_since.pop((addr, due[addr]), None)
        self.released += len(freed)
        return freed

    def run(self, stop: threading.Event) -> None:
        while True:
            self.sweep()
            if stop.wait(self.interval):
                return
