"""Admission: what happens to an object between the user's manifest and the store.

`admit(store, obj)` runs before every create/update and returns the object to write
(a Service gets its cluster IPs and node ports here); `release(store, obj)` runs after a
delete and gives back what admission took. Per-kind plugins come from other parts of
podnet when they are installed (looked up with importlib, so this module works before
they exist). A plugin reports a refusal by raising ValueError (or its own error type);
`AdmissionError` carries the message to the user.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from podnet.api.objects import Resource
from podnet.datastore.interface import Datastore

# kind -> (module, admit function, release function)
PLUGINS: dict[str, tuple[str, str, str]] = {
    "Service": ("podnet.ipam.serviceips", "admit_service", "release_service"),
}


class AdmissionError(Exception):
    """The object was refused; str(e) says why, in one line."""


def _plugin(kind: str, which: int) -> Callable[..., Any] | None:
    spec = PLUGINS.get(kind)
    if spec is None:
        return None
    try:
        mod = importlib.import_module(spec[0])
    except ModuleNotFoundError as e:
        if e.name and spec[0].startswith(e.name):
            return None  # that part of podnet is not installed
        raise
    return getattr(mod, spec[which], None)


NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _namespace(obj: Resource) -> Resource:
    """The API server's own defaulting: every Namespace carries the immutable label
    `kubernetes.io/metadata.name` (policies select namespaces by it) and a phase."""
    labels = dict(obj.metadata.get("labels") or {})
    if labels.get(NAMESPACE_NAME_LABEL) == obj.name and obj.status.get("phase"):
        return obj
    labels[NAMESPACE_NAME_LABEL] = obj.name
    out = obj.with_metadata(labels=labels)
    return out if obj.status.get("phase") else out.with_status(dict(obj.status, phase="Active"))


def admit(store: Datastore, obj: Resource) -> Resource:
    if obj.kind == "Namespace":
        obj = _namespace(obj)
    fn = _plugin(obj.kind, 1)
    if fn is None:
        return obj
    try:
        out = fn(store, obj)
    except AdmissionError:
        raise
    except (ValueError, LookupError) as e:
        raise AdmissionError(str(e)) from None
    except Exception as e:  # the plugin's own error tree: a refusal, not a crash
        if type(e).__module__.startswith("podnet."):
            raise AdmissionError(str(e)) from None
        raise
    return out if out is not None else obj


def release(store: Datastore, obj: Resource) -> None:
    fn = _plugin(obj.kind, 2)
    if fn is not None:
        fn(store, obj)
