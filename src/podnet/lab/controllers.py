"""Cluster-wide controllers the lab runs on its control-plane node, next to the kubelet.

Each entry names a class built as `Class(store)` whose `run(stop_event)` loops until the
event is set (the EndpointSlice controller), or a function `fn(store, stop_event)`. Each
gets its own store connection and thread; a module not built yet is skipped, one that
fails is logged and the others keep running.
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from podnet.datastore.interface import open_datastore

log = logging.getLogger("podnet.kubelet")

CONTROLLERS: tuple[tuple[str, str], ...] = (
    ("podnet.agent.endpointslice_controller", "EndpointSliceController"),
)


def _load(mod_name: str, attr: str) -> Any:
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name == mod_name:
            return None
        log.exception("controller %s: import failed", mod_name)
        return None
    return getattr(mod, attr, None)


def start_controllers(url: str, stop: threading.Event) -> list[str]:
    """Start every controller that exists against datastore `url`; returns their names."""
    started = []
    for mod_name, attr in CONTROLLERS:
        target = _load(mod_name, attr)
        if target is None:
            continue

        def body(target: Any = target, name: str = f"{mod_name}.{attr}") -> None:
            store = None
            try:
                store = open_datastore(url)
                if isinstance(target, type):
                    target(store).run(stop)
                else:
                    target(store, stop)
            except Exception:  # noqa: BLE001 - the kubelet keeps running
                log.exception("controller %s stopped", name)
            finally:
                if store is not None:
                    store.close()
        threading.Thread(target=body, daemon=True, name=attr).start()
        started.append(f"{mod_name}.{attr}")
    return started
