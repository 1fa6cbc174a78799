"""Deleting as Kubernetes does: admission's release after each delete, a Namespace takes
everything in it along, and objects owned (ownerReferences) by a deleted object go too
(the garbage collector's cascade, done at once), or are orphaned on request.

propagationPolicy: "Background" (the default) and "Foreground" both delete the dependents
now (there is no asynchronous collector to wait for); "Orphan" keeps them and removes
the owner from their ownerReferences, as the garbage collector does.

A Pod ends gracefully, as Kubernetes' pod strategy (CheckGracefulDelete) has it (issue
17 §1): deleting a scheduled pod only marks it terminating, `metadata.deletionTimestamp`
(now + grace) and `deletionGracePeriodSeconds`; the grace is DeleteOptions'
`gracePeriodSeconds`, else the pod's `spec.terminationGracePeriodSeconds`, else 30 s.
Its kubelet then stops it (preStop hook, SIGTERM, SIGKILL at the deadline), tears its
network down and deletes it for good with grace 0. Grace 0 (`--grace-period=0 --force`)
deletes at once, and so does deleting a pod no node has taken (nothing to stop) or one
whose phase is Succeeded or Failed. A second delete of a terminating pod may shorten its
grace, never lengthen it. Only the final delete releases what admission took and
cascades. A namespace with pods still ending stays, Terminating (deletionTimestamp, phase
Terminating, no new content), until the last of them is gone; the rest of its content
goes at once.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from podnet.api.objects import KINDS, INTERNAL_KINDS, Resource, is_namespaced
from podnet.apiserver.admission import release
from podnet.apiserver.errors import BadRequest, Forbidden
from podnet.datastore.interface import Conflict, Datastore, NotFound
from podnet.datastore.util import update_with_retry

PROTECTED_NAMESPACES = ("default", "kube-system")
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
# owner kind -> kinds its dependents may have (ownerReferences), collected with it.
# Anything else owns nothing, so deleting it looks for no dependents.
OWNED_KINDS: dict[str, tuple[str, ...]] = {"Deployment": ("Pod",), "Service": ("EndpointSlice",)}
ATTEMPTS = 20
DEFAULT_GRACE_SECONDS = 30  # Kubernetes' default spec.terminationGracePeriodSeconds
TERMINAL_PHASES = ("Succeeded", "Failed")


def delete_object(store: Datastore, kind: str, namespace: str, name: str,
                  revision: int | None = None, propagation: str = "Background",
                  grace_period: int | None = None) -> Resource:
    """Delete one object and what depends on it; a Pod with a grace period is only marked
    terminating (and returned so). `grace_period` None = the object's own. Raises
    NotFound, Conflict (a stale `revision`), Forbidden, BadRequest."""
    if propagation not in PROPAGATION_POLICIES:
        raise BadRequest(f"propagationPolicy {propagation!r}: use one of {', '.join(PROPAGATION_POLICIES)}")
    if grace_period is not None and grace_period < 0:
        raise BadRequest(f"gracePeriodSeconds {grace_period}: must be 0 or more")
    if kind == "Pod":
        marked = _mark_terminating(store, namespace, name, revision, grace_period)
        if marked is not None:
            return marked
    if kind == "Namespace":
        if name in PROTECTED_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        store.get(kind, "", name)  # NotFound before touching its contents
        for k in KINDS:
            if is_namespaced(k) and k not in INTERNAL_KINDS:
                for o in store.list(k, name).items:
                    _delete_quietly(store, o)
        if store.list("Pod", name).items:  # pods still ending: the namespace waits for them
            marked = _mark_namespace(store, name, revision)
            _finish_namespace(store, name)  # the last one may have gone meanwhile
            return marked
    gone = store.delete(kind, namespace, name, revision=revision)
    release(store, gone)
    if kind == "Pod":
        _finish_namespace(store, namespace)
    if is_namespaced(kind) and gone.uid:
        for o in dependents(store, gone):
            if propagation == "Orphan":
                _orphan(store, o, gone.uid)
            else:
                _delete_quietly(store, o)
    return gone


def pod_grace(pod: Resource, asked: int | None) -> int:
    """The grace period a delete gives `pod`: 0 when nothing runs it (unscheduled, or
    already finished), else what was asked, else its terminationGracePeriodSeconds."""
    if not (pod.spec.get("nodeName") or "") or pod.status.get("phase") in TERMINAL_PHASES:
        return 0
    if asked is not None:
        return asked
    want = pod.spec.get("terminationGracePeriodSeconds")
    return int(want) if isinstance(want, int) and want >= 0 else DEFAULT_GRACE_SECONDS


def _mark_terminating(store: Datastore, namespace: str, name: str, revision: int | None,
                      asked: int | None) -> Resource | None:
    """Set deletionTimestamp and deletionGracePeriodSeconds (CAS); None = delete now."""
    now_: list[bool] = []

    def mark(cur: Resource) -> Resource | None:
        if revision and cur.resource_version != revision:
            raise Conflict(f'Operation cannot be fulfilled on pods "{name}": the object has been '
                           f"modified; please apply your changes to the latest version and try again")
        grace = pod_grace(cur, asked)
        had = cur.metadata.get("deletionGracePeriodSeconds")
        now_[:] = [grace == 0]
        if grace == 0 or (cur.deletion_timestamp and isinstance(had, int) and had <= grace):
            return None  # delete now, or already terminating as soon or sooner
        until = datetime.now(timezone.utc) + timedelta(seconds=grace)
        if cur.deletion_timestamp and isinstance(had, int):
            # shortened: the deadline moves closer by the difference, as the API server does
            until = _parse_time(cur.deletion_timestamp) - timedelta(seconds=had - grace)
        d: dict[str, Any] = cur.to_dict()
        d["metadata"]["deletionTimestamp"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        d["metadata"]["deletionGracePeriodSeconds"] = grace
        return type(cur)(d)
    out = update_with_retry(store, "Pod", namespace, name, mark, ATTEMPTS)
    return None if now_ and now_[0] else out


def _mark_namespace(store: Datastore, name: str, revision: int | None) -> Resource:
    """A namespace whose pods are still ending turns Terminating (deletionTimestamp, phase
    Terminating) and refuses new content (Writer); its last pod's removal deletes it."""
    def mark(cur: Resource) -> Resource | None:
        if revision and cur.resource_version != revision:
            raise Conflict(f'Operation cannot be fulfilled on namespaces "{name}": the object has '
                           f"been modified; please apply your changes to the latest version and try again")
        if cur.deletion_timestamp:
            return None
        d: dict[str, Any] = cur.to_dict()
        d["metadata"]["deletionTimestamp"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        d["metadata"]["deletionGracePeriodSeconds"] = 0
        d.setdefault("status", {})["phase"] = "Terminating"
        return type(cur)(d)
    return update_with_retry(store, "Namespace", "", name, mark, ATTEMPTS)


def _finish_namespace(store: Datastore, name: str) -> None:
    """The namespace controller's last step, done at once: a Terminating namespace goes
    with its last pod."""
    try:
        ns = store.get("Namespace", "", name)
    except NotFound:
        return
    if ns.deletion_timestamp and not store.list("Pod", name).items:
        try:
            delete_object(store, "Namespace", "", name)
        except NotFound:
            pass


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)


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
