"""The EndpointSlice controller: watch Services, Pods and EndpointSlices in the store and
write the slices calc.endpointslices says each Service should have.

Events only mark Services dirty: a Service or slice event its own Service, a Pod event the
Services whose selector matches the pod's labels now or before (a cache of Services and of
pod labels makes that cheap). A batch then lists each dirty namespace's Pods once and
reconciles the dirty Services: create what is missing, update what differs (CAS on the
slice's revision), delete managed slices no longer wanted. Only slices
labelled `endpointslice.kubernetes.io/managed-by: podnet-controller` are ever touched, so
a selector-less Service keeps the slices its user applies. A Conflict just marks the
namespace dirty again; a store error is logged and retried; nothing raises out of `run`.
The list+watch is the shared datastore.cache.Informer (a relist or the periodic resync
reconciles every namespace). Nodes are watched for what topology needs: the zone label
(an endpoint's `zone` and its hints, calc/topology.py) and, for topology-mode Auto, the
CPU, readiness and role of each (calc/topology_auto.py); a node changing any of those
reconciles all.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Iterable

from podnet.api.objects import Node, Pod, Resource, Service, from_dict
from podnet.api.selector import LabelSelector
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.calc.endpointslices import (CONTROLLER, MANAGED_BY, SERVICE_NAME, desired_slices,
                                        same_slice)
from podnet.calc.topology_auto import NodeFacts, node_facts, zone_ratios
from podnet.datastore.cache import Batch, Informer
from podnet.datastore.interface import (AlreadyExists, Conflict, Datastore, DatastoreError, Event,
                                        NotFound)

log = logging.getLogger("podnet.controllers.endpointslice")
KINDS = ("Service", "Pod", "EndpointSlice", "Node")
NAMESPACED = ("Service", "Pod", "EndpointSlice")
BATCH_WINDOW = 0.05


class EndpointSliceController:
    def __init__(self, store: Datastore):
        self.store = store
        self.writer = Writer(store)
        self._services: dict[tuple[str, str], Service] = {}
        self._pod_labels: dict[tuple[str, str], dict[str, str]] = {}
        self._nodes: dict[str, NodeFacts] | None = None  # None: not listed yet
        self._nodes_moved = False
        self.writes = 0
        self.reconciles = 0
        self.errors = 0

    # ---- one namespace --------------------------------------------------------------------
    def reconcile_namespace(self, ns: str, only: set[str] | None = None) -> bool:
        """Bring the managed slices of `ns` (of the Services named in `only`, or all) in
        line. False when something must be retried."""
        if self._nodes is None:
            self._list_nodes()
        nodes = self._nodes or {}
        zones = {name: f.zone for name, f in nodes.items() if f.zone}
        ratios = zone_ratios(nodes.values())
        pods = [p for p in self.store.list("Pod", ns).items if isinstance(p, Pod)]
        services = {s.name: s for s in self.store.list("Service", ns).items if isinstance(s, Service)}
        for p in pods:
            self._pod_labels[(ns, p.name)] = p.labels
        for name in list(k[1] for k in self._services if k[0] == ns and k[1] not in services):
            del self._services[(ns, name)]
        self._services.update({(ns, n): svc for n, svc in services.items()})
        managed = self.store.list("EndpointSlice", ns, LabelSelector.from_map({MANAGED_BY: CONTROLLER})).items
        have: dict[str, dict[str, Resource]] = {}
        for sl in managed:
            have.setdefault(sl.labels.get(SERVICE_NAME, ""), {})[sl.name] = sl
        ok = True
        names = set(services) | set(have)
        for name in sorted(names if only is None else names & only):
            svc = services.get(name)
            want = desired_slices(svc, pods, zones, ratios) if svc is not None else []
            ok &= self._converge(want, have.get(name, {}))
        self.reconciles += 1
        return ok

    def _converge(self, want: list[dict[str, Any]], have: dict[str, Resource]) -> bool:
        ok = True
        for d in want:
            cur = have.pop(d["metadata"]["name"], None)
            try:
                if cur is None:
                    self.writer.create(from_dict(d))
                elif not same_slice(d, cur.raw):
                    d["metadata"]["resourceVersion"] = str(cur.resource_version)
                    self.writer.update(from_dict(d), revision=cur.resource_version)
                else:
                    continue
                self.writes += 1
            except (Conflict, AlreadyExists, NotFound, WriteError):
                ok = False  # someone else wrote in between: recompute
        for gone in have.values():
            try:
                self.writer.delete("EndpointSlice", gone.namespace, gone.name, revision=gone.resource_version)
                self.writes += 1
            except (Conflict, NotFound):
                ok = False
        return ok

    def reconcile_all(self) -> int:
        """Every namespace that has Services, Pods or managed slices; returns the revision
        the lists were consistent at (where a watch starts)."""
        rev = self.store.revision()
        self._list_nodes()
        namespaces = set()
        for kind in NAMESPACED:
            namespaces |= {o.namespace for o in self.store.list(kind).items}
        for ns in sorted(namespaces):
            self._safe(ns)
        return rev

    def _list_nodes(self) -> None:
        self._nodes = {n.name: node_facts(n) for n in self.store.list("Node").items
                       if isinstance(n, Node)}

    def _safe(self, ns: str, only: set[str] | None = None) -> bool:
        try:
            return self.reconcile_namespace(ns, only)
        except DatastoreError as e:
            self.errors += 1
            log.warning("namespace %s: %s (will retry)", ns, e)
            return False
        except Exception:  # noqa: BLE001 - a bad object must never stop the controller
            self.errors += 1
            log.exception("namespace %s: reconcile failed", ns)
            return True

    # ---- the loop -------------------------------------------------------------------------
    def services_touched(self, ev: Event) -> tuple[str, set[str]]:
        """(namespace, Service names) an event concerns."""
        obj = ev.object
        ns = obj.namespace
        if obj.kind == "Service":
            if ev.type == "DELETED":
                self._services.pop((ns, obj.name), None)
            elif isinstance(obj, Service):
                self._services[(ns, obj.name)] = obj
            return ns, {obj.name}
        if obj.kind == "EndpointSlice":
            return ns, {obj.labels.get(SERVICE_NAME, "")} - {""}
        if obj.kind == "Node":
            facts = node_facts(obj) if ev.type != "DELETED" and isinstance(obj, Node) else None
            if self._nodes is not None and self._nodes.get(obj.name) != facts:
                if facts is None:
                    self._nodes.pop(obj.name, None)
                else:
                    self._nodes[obj.name] = facts
                self._nodes_moved = True  # the run loop reconciles everything
            return ns, set()
        old = self._pod_labels.pop((ns, obj.name), None)
        if ev.type != "DELETED":
            self._pod_labels[(ns, obj.name)] = obj.labels
        out = set()
        for (sns, name), svc in self._services.items():
            if sns == ns and svc.has_selector and (svc.selector.matches(obj.labels)
                                                   or (old is not None and svc.selector.matches(old))):
                out.add(name)
        return ns, out

    def run(self, stop: threading.Event, resync_every: float = 300.0) -> None:
        """Until `stop`: an Informer feeds batches; a batch from a (re)list reconciles every
        namespace, any other the Services its events touch."""
        batches: queue.Queue[Batch] = queue.Queue()
        with Informer(self.store, KINDS, batches.put, batch_window=BATCH_WINDOW,
                      name="endpointslice") as informer:
            while not informer.wait_synced(0.5):
                if stop.is_set():
                    return
            dirty: dict[str, set[str]] = {}
            last_full = time.monotonic()
            while not stop.is_set():
                got = _drain(batches, timeout=0.2 if dirty else 0.5)
                # first keep the Service, pod-label and zone caches in step
                touched = [t for b in got for t in self._touched(b.events)]
                if any(b.resync for b in got) or self._nodes_moved \
                        or time.monotonic() - last_full > resync_every:
                    self._nodes_moved = False
                    self.reconcile_all()
                    dirty.clear()
                    last_full = time.monotonic()
                    continue
                for ns, names in touched:
                    dirty.setdefault(ns, set()).update(names)
                for ns in sorted(dirty):
                    if self._safe(ns, dirty[ns]):
                        del dirty[ns]

    def _touched(self, events: Iterable[Event]) -> list[tuple[str, set[str]]]:
        out = []
        for ev in events:
            try:
                ns, names = self.services_touched(ev)
            except Exception:  # noqa: BLE001 - a strange event must not stop the loop
                log.exception("event %s skipped", getattr(ev, "revision", "?"))
                continue
            if names:
                out.append((ns, names))
        return out


def _drain(batches: "queue.Queue[Batch]", timeout: float) -> list[Batch]:
    """The batches waiting, after waiting up to `timeout` for the first."""
    try:
        got = [batches.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            got.append(batches.get_nowait())
        except queue.Empty:
            return got
