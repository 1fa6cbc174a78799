"""Run the cluster-wide controllers, each supervised: the lab runs all of them on its
control-plane node, next to the kubelet; `podnet controllers` the ones it is asked for.

Each runs in its own thread with its own store connection; one that fails is logged and
restarted with back-off (a controller that silently stayed dead would freeze every
Service's endpoints), until the kubelet stops.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from podnet.controllers import endpointslice, ipam_gc, loadbalancer, node_cleanup
from podnet.controllers.endpointslice import EndpointSliceController
from podnet.controllers.ipam_gc import IpamGarbageCollector
from podnet.controllers.loadbalancer import LoadBalancerController
from podnet.controllers.node_cleanup import NodeCleanup
from podnet.datastore.interface import Datastore, open_datastore

log = logging.getLogger("podnet.kubelet")

# Built as `Class(store)`; `run(stop_event)` loops until the event is set.
BY_NAME: dict[str, Callable[[Datastore], Any]] = {
    "endpointslice": EndpointSliceController, "loadbalancer": LoadBalancerController,
    "ipam-gc": IpamGarbageCollector, "node-cleanup": NodeCleanup}
# The kinds each reads (deploy/podnet.yaml's RBAC is checked against them)
READS: dict[str, tuple[str, ...]] = {
    "endpointslice": endpointslice.KINDS, "loadbalancer": loadbalancer.KINDS,
    "ipam-gc": ipam_gc.KINDS, "node-cleanup": node_cleanup.KINDS}
# The lab's (its kubelet plays kube-controller-manager too): all of them.
CONTROLLERS: tuple[Callable[[Datastore], Any], ...] = tuple(BY_NAME.values())
# A real cluster's (the Kubernetes datastore): Calico kube-controllers' set; there
# kube-controller-manager keeps the EndpointSlices and kube-apiserver allocates Service IPs.
IN_A_CLUSTER = ("ipam-gc", "node-cleanup", "loadbalancer")
RESTART_FIRST, RESTART_MAX = 0.5, 30.0


def _supervise(make: Callable[[Datastore], Any], url: str, stop: threading.Event) -> None:
    delay = RESTART_FIRST
    while not stop.is_set():
        store = None
        try:
            store = open_datastore(url)
            make(store).run(stop)
            delay = RESTART_FIRST
        except Exception:  # noqa: BLE001 - keep the controller alive
            log.exception("controller %s failed; restarting in %.1fs", make.__name__, delay)
        finally:
            if store is not None:
                store.close()
        if stop.wait(delay):
            return
        delay = min(delay * 2, RESTART_MAX)


def start_controllers(url: str, stop: threading.Event,
                      makers: tuple[Callable[[Datastore], Any], ...] | None = None) -> list[str]:
    """Start the controllers (default: every one) against datastore `url`; returns their names."""
    chosen = CONTROLLERS if makers is None else makers
    for make in chosen:
        threading.Thread(target=_supervise, args=(make, url, stop), daemon=True,
                         name=make.__name__).start()
    return [make.__name__ for make in chosen]
