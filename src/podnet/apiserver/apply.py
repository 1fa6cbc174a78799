"""`apply` semantics, kubectl's: store the user's manifest, keep what the server set.

The manifest as the user wrote it is kept in annotation `podnet.io/last-applied` (like
kubectl's last-applied-configuration). Re-applying the same manifest is "unchanged";
otherwise a three-way merge of (live, last applied, new manifest) keeps fields others
set (status, uid, creationTimestamp, a scheduler's nodeName, a Service's allocated
clusterIP/clusterIPs/ipFamilies) and drops fields the user removed. Lists are replaced
whole, except that a NodePort Service keeps the nodePorts it was given. Every write is a
compare-and-swap on the revision just read, retried on Conflict.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from podnet.api.objects import Resource, from_dict, is_namespaced
from podnet.cli.admission import admit, release
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore, NotFound

LAST_APPLIED = "podnet.io/last-applied"
ATTEMPTS = 20
# Fields an allocator sets on a Service; dropped when it becomes ExternalName.
_SERVICE_ALLOCATED = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy")


class ApplyError(Exception):
    """A refusal of one object (one line, without the object's file/doc prefix)."""


@dataclass(frozen=True)
class Outcome:
    action: str  # "created" | "configured" | "unchanged"
    before: Resource | None
    after: Resource


def canonical(d: Any) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def user_manifest(obj: Resource) -> dict[str, Any]:
    """The manifest to remember: as written, with the namespace filled in, without an
    older last-applied annotation (a manifest copied out of `get -o yaml`)."""
    d = copy.deepcopy(obj.raw)
    md = d.setdefault("metadata", {})
    if is_namespaced(obj.kind):
        md["namespace"] = obj.namespace
    else:
        md.pop("namespace", None)  # cluster-scoped: the store drops it too
    ann = md.get("annotations")
    if isinstance(ann, dict) and LAST_APPLIED in ann:
        del ann[LAST_APPLIED]
        if not ann:
            del md["annotations"]
    for f in ("resourceVersion", "uid", "creationTimestamp"):
        md.pop(f, None)
    return d


def merge3(live: Any, last: Any, new: Any) -> Any:
    """JSON-merge three ways: new wins; live-only keys survive unless last had them."""
    if not (isinstance(live, dict) and isinstance(new, dict)):
        return copy.deepcopy(new)
    last = last if isinstance(last, dict) else {}
    out = {k: merge3(live.get(k), last.get(k), v) for k, v in new.items()}
    for k, v in live.items():
        if k not in new and k not in last:
            out[k] = copy.deepcopy(v)
    return out


def _fix_service(merged: dict[str, Any], live: Resource, user: dict[str, Any]) -> None:
    spec = merged.get("spec")
    if not isinstance(spec, dict):
        return
    uspec = user.get("spec") if isinstance(user.get("spec"), dict) else {}
    typ = spec.get("type") or "ClusterIP"
    if typ == "ExternalName":
        for f in _SERVICE_ALLOCATED:
            if f not in uspec:
                spec.pop(f, None)
    if typ != "NodePort":
        return
    old = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
           for p in (live.spec.get("ports") or []) if isinstance(p, dict) and p.get("nodePort")}
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and not p.get("nodePort"):
            np = old.get((p.get("port"), p.get("protocol") or "TCP"))
            if np:
                p["nodePort"] = np


def check_immutable(live: Resource, user: dict[str, Any]) -> None:
    """Kubernetes refuses to change these in place; so do we."""
    uspec = user.get("spec") if isinstance(user.get("spec"), dict) else {}
    if live.kind == "Service" and live.spec.get("type") != "ExternalName":
        want, have = uspec.get("clusterIP"), live.spec.get("clusterIP")
        if want not in (None, "") and have not in (None, "") and want != have \
                and uspec.get("type", "ClusterIP") != "ExternalName":
            raise ApplyError(f"spec.clusterIP: field is immutable (is {have}, manifest says {want}); "
                             "delete the Service and apply again")
    if live.kind == "Deployment" and "selector" in uspec and \
            canonical(uspec.get("selector")) != canonical(live.spec.get("selector")):
        raise ApplyError("spec.selector: field is immutable; delete the Deployment and apply again")


def apply_one(store: Datastore, obj: Resource) -> Outcome:
    user = user_manifest(obj)
    wanted = canonical(user)
    kind, ns, name = obj.kind, obj.namespace, obj.name
    for _ in range(ATTEMPTS):
        try:
            live = store.get(kind, ns, name)
        except NotFound:
            live = None
        stamped = copy.deepcopy(user)
        stamped["metadata"].setdefault("annotations", {})[LAST_APPLIED] = wanted
        if live is None:
            new = admit(store, from_dict(stamped))
            try:
                return Outcome("created", None, store.create(new))
            except AlreadyExists:
                release_quietly(store, new)
                continue
        try:
            last = json.loads(live.annotations.get(LAST_APPLIED, "{}"))
        except ValueError:
            last = {}
        merged = merge3(live.raw, last, stamped)
        if kind == "Service":
            _fix_service(merged, live, user)
        if merged == live.raw:
            # Like kubectl: nothing to patch. (Same manifest as last time, and nobody
            # changed a field the manifest sets.)
            return Outcome("unchanged", live, live)
        check_immutable(live, user)
        new = admit(store, from_dict(merged))
        try:
            return Outcome("configured", live, store.update(new, revision=live.resource_version))
        except (Conflict, NotFound):
            continue
    raise ApplyError(f"gave up after {ATTEMPTS} conflicting writes by others; try again")


def release_quietly(store: Datastore, obj: Resource) -> None:
    try:
        release(store, obj)
    except Exception:  # best effort: the object was never stored
        pass


def undo(store: Datastore, outcome: Outcome) -> None:
    """Put the store back as it was before `outcome` (used when a later object fails)."""
    after = outcome.after
    if outcome.action == "created":
        try:
            gone = store.delete(after.kind, after.namespace, after.name)
        except NotFound:
            return
        release_quietly(store, gone)
    elif outcome.action == "configured" and outcome.before is not None:
        for _ in range(ATTEMPTS):
            try:
                cur = store.get(after.kind, after.namespace, after.name)
                store.update(outcome.before, revision=cur.resource_version)
                return
            except Conflict:
                continue
            except NotFound:
                return
