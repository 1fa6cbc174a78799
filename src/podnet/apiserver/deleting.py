"""Deleting as Kubernetes does: admission's release after each delete, a Namespace takes
everything in it along, and objects owned (ownerReferences) by a deleted object go too
(the garbage collector's background cascade, done at once).
"""
from __future__ import annotations

from podnet.api.objects import KINDS, Resource, is_namespaced
from podnet.cli.admission import release
from podnet.cli.errors import UserError
from podnet.datastore.interface import Datastore, NotFound

PROTECTED_NAMESPACES = ("default", "kube-system")
# Kinds whose objects may be owned by another object, and so are collected with it.
_OWNED_KINDS = ("Pod", "EndpointSlice")


def delete_object(store: Datastore, kind: str, namespace: str, name: str) -> Resource:
    """Delete one object and what depends on it. Raises NotFound, UserError."""
    if kind == "Namespace":
        if name in PROTECTED_NAMESPACES:
            raise UserError(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        store.get(kind, "", name)  # NotFound before touching its contents
        for k in KINDS:
            if is_namespaced(k):
                for o in store.list(k, name).items:
                    _delete_quietly(store, o)
    gone = store.delete(kind, namespace, name)
    release(store, gone)
    if is_namespaced(kind) and gone.uid:
        for k in _OWNED_KINDS:
            for o in store.list(k, namespace).items:
                if any(r.get("uid") == gone.uid for r in o.metadata.get("ownerReferences") or []):
                    _delete_quietly(store, o)
    return gone


def _delete_quietly(store: Datastore, obj: Resource) -> None:
    try:
        delete_object(store, obj.kind, obj.namespace, obj.name)
    except NotFound:
        pass  # someone else deleted it first: the outcome is the same
