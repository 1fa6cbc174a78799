"""Admission: what happens to an object between the user's manifest and the store.

`admit(store, obj)` runs before every create/update (in write.Writer, the one write
path) and returns the object to write
(a Service gets its cluster IPs and node ports here); `release(store, obj)` runs after a
delete and gives back what admission took. Per-kind plugins come from other parts of
podnet (a Service's addresses from podnet.ipam.serviceips). A plugin reports a refusal
by raising ValueError (or its own error type); `AdmissionError` carries the message to
the user.
"""
from __future__ import annotations

from typing import Any, Callable

from podnet.api.objects import Resource
from podnet.datastore.interface import Datastore
from podnet.ipam import serviceips

Admit = Callable[[Datastore, Any], Any]  # each takes the kind's class
Release = Callable[[Datastore, Resource], Any]

# kind -> (admit, release)
PLUGINS: dict[str, tuple[Admit, Release]] = {
    "Service": (serviceips.admit_service, serviceips.release_service),
}


class AdmissionError(Exception):
    """The object was refused; str(e) says why, in one line."""


def _plugin(kind: str, which: int) -> Callable[..., Any] | None:
    fns = PLUGINS.get(kind)
    return fns[which] if fns else None


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
    fn = _plugin(obj.kind, 0)
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
    fn = _plugin(obj.kind, 1)
    if fn is not None:
        fn(store, obj)
