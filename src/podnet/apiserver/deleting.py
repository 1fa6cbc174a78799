"""Deleting as Kubernetes does: admission's release after each delete, a Namespace takes
everything in it along, and objects owned (ownerReferences) by a deleted object go too
(the garbage collector's cascade, done at once), or are orphaned on request.

propagationPolicy: "Background" (the default) and "Foreground" both delete the dependents
now (there is no asynchronous collector to wait for); "Orphan" keeps them and removes
the owner from their ownerReferences, as the garbage collector does.
"""
from __future__ import annotations

from typing import Any

from podnet.api.objects import KINDS, INTERNAL_KINDS, Resource, is_namespaced
from podnet.apiserver.admission import release
from podnet.apiserver.errors import BadRequest, Forbidden
from podnet.datastore.interface import Datastore, NotFound
from podnet.datastore.util import update_with_retry

PROTECTED_NAMESPACES = ("default", "kube-system")
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
# owner kind -> kinds its dependents may have (ownerReferences), collected with it.
# Anything else owns nothing, so deleting it looks for no dependents.
OWNED_KINDS: dict[str, tuple[str, ...]] = {"Deployment": ("Pod",), "Service": ("EndpointSlice",)}
ATTEMPTS = 20


def delete_object(store: Datastore, kind: str, namespace: str, name: str,
                  revision: int | None = None, propagation: str = "Background") -> Resource:
    """Delete one object and what depends on it. Raises NotFound, Conflict (a stale
    `revision`), Forbidden, BadRequest."""
    if propagation not in PROPAGATION_POLICIES:
        raise BadRequest(f"propagationPolicy {propagation!r}: use one of {', '.join(PROPAGATION_POLICIES)}")
    if kind == "Namespace":
        if name in PROTECTED_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        store.get(kind, "", name)  # NotFound before touching its contents
        for k in KINDS:
            if is_namespaced(k) and k not in INTERNAL_KINDS:
                for o in store.list(k, name).items:
                    _delete_quietly(store, o)
    gone = store.delete(kind, namespace, name, revision=revision)
    release(store, gone)
    if is_namespaced(kind) and gone.uid:
        for o in dependents(store, gone):
            if propagation == "Orphan":
                _orphan(store, o, gone.uid)
            else:
                _delete_quietly(store, o)
    return gone


def dependents(store: Datastore, owner: Resource) -> list[Resource]:
    return [o for k in OWNED_KINDS.get(owner.kind, ()) for o in store.list(k, owner.namespace).items
            if any(r.get("uid") == owner.uid for r in o.metadata.get("ownerReferences") or [])]


def _delete_quietly(store: Datastore, obj: Resource) -> None:
    try:
        delete_object(store, obj.kind, obj.namespace, obj.name)
    except NotFound:
        pass  # someone else deleted it first: the outcome is the same


def _orphan(store: Datastore, obj: Resource, owner_uid: str) -> None:
    def drop(cur: Resource) -> Resource | None:
        old = cur.metadata.get("ownerReferences") or []
        refs = [r for r in old if r.get("uid") != owner_uid]
        if len(refs) == len(old):
            return None
        d: dict[str, Any] = cur.to_dict()
        if refs:
            d["metadata"]["ownerReferences"] = refs
        else:
            d["metadata"].pop("ownerReferences", None)
        return type(cur)(d)
    try:
        update_with_retry(store, obj.kind, obj.namespace, obj.name, drop, ATTEMPTS)
    except NotFound:
        pass  # deleted meanwhile: nothing left to orphan
