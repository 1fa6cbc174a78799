"""Run every cluster-wide controller, each supervised: the lab runs them on its control-plane
node, next to the kubelet.

Each runs in its own thread with its own store connection; one that fails is logged and
restarted with back-off (a controller that silently stayed dead would freeze every
Service's endpoints), until the kubelet stops.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from podnet.controllers.endpointslice import EndpointSliceController
from podnet.controllers.ipam_gc import IpamGarbageCollector
from podnet.controllers.loadbalancer import LoadBalancerController
from podnet.datastore.interface import Datastore, open_datastore

log = logging.getLogger("podnet.kubelet")

# Built as `Class(store)`; `run(stop_event)` loops until the event is set.
CONTROLLERS: tuple[Callable[[Datastore], Any], ...] = (EndpointSliceController, LoadBalancerController,
                                                       IpamGarbageCollector)
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


def start_controllers(url: str, stop: threading.Event) -> list[str]:
    """Start every controller against datastore `url`; returns their names."""
    for make in CONTROLLERS:
        threading.Thread(target=_supervise, args=(make, url, stop), daemon=True,
                         name=make.__name__).start()
    return [make.__name__ for make in CONTROLLERS]
