"""Cluster-wide controllers the lab runs on its control-plane node, next to the kubelet.

Each is `function(store, stop_event)` on its own thread (the EndpointSlice controller);
a module not built yet is skipped, one that fails is logged and the rest keep running.
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable

from podnet.datastore.interface import Datastore

log = logging.getLogger("podnet.kubelet")

# Cluster-wide controllers run next to the kubelet on the control-plane node, each as
# `function(store, stop_event)` on its own thread; a module not built yet is skipped.
CONTROLLERS: tuple[tuple[str, str], ...] = (
    ("podnet.agent.endpointslice_controller", "run"),
)


def start_controllers(store: Datastore, stop: threading.Event) -> list[str]:
    started = []
    for mod_name, fn_name in CONTROLLERS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                continue
            log.exception("controller %s: import failed", mod_name)
            continue
        fn = getattr(mod, fn_name, None)
        if fn is None:
            continue

        def body(fn: Callable[..., Any] = fn, name: str = mod_name) -> None:
            try:
                fn(store, stop)
            except Exception:  # noqa: BLE001 - the kubelet keeps running
                log.exception("controller %s stopped", name)
        threading.Thread(target=body, daemon=True, name=mod_name).start()
        started.append(mod_name)
    return started
