"""`apply` semantics, kubectl's client-side apply: what to write, given the live object.

The manifest as the user wrote it is kept in annotation `podnet.io/last-applied` (like
kubectl's last-applied-configuration). Re-applying the same manifest is "unchanged";
otherwise a three-way merge of (live, last applied, new manifest) keeps fields others
set (status, uid, creationTimestamp, a scheduler's nodeName, a Service's allocated
clusterIP/clusterIPs/ipFamilies) and drops fields the user removed. Lists are replaced
whole, except that a NodePort Service keeps the nodePorts it was given. Pure: the write
itself (admission, compare-and-swap, retries) is write.Writer.apply.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from podnet.api.errors import FieldError
from podnet.api.objects import Resource, is_namespaced
from podnet.apiserver.errors import Invalid

LAST_APPLIED = "podnet.io/last-applied"
# Fields an allocator sets on a Service; dropped when it becomes ExternalName.
_SERVICE_ALLOCATED = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy")


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


def stamped_manifest(obj: Resource) -> dict[str, Any]:
    """The user's manifest carrying itself in the last-applied annotation."""
    user = user_manifest(obj)
    stamped = copy.deepcopy(user)
    stamped["metadata"].setdefault("annotations", {})[LAST_APPLIED] = canonical(user)
    return stamped


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


def merged_for_apply(live: Resource, obj: Resource) -> dict[str, Any]:
    """The object `apply` of `obj` writes over `live` (equal to live.raw: unchanged)."""
    user = user_manifest(obj)
    try:
        last = json.loads(live.annotations.get(LAST_APPLIED, "{}"))
    except ValueError:
        last = {}
    merged = merge3(live.raw, last, stamped_manifest(obj))
    if live.kind == "Service":
        _fix_service(merged, live, user)
    return dict(merged)


def _fix_service(merged: dict[str, Any], live: Resource, user: dict[str, Any]) -> None:
    spec = merged.get("spec")
    if not isinstance(spec, dict):
        return
    uspec: dict[str, Any] = user["spec"] if isinstance(user.get("spec"), dict) else {}
    typ = spec.get("type") or "ClusterIP"
    if typ == "ExternalName":
        for f in _SERVICE_ALLOCATED:
            if f not in uspec:
                spec.pop(f, None)
    if typ not in ("NodePort", "LoadBalancer"):
        return
    old = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
           for p in (live.spec.get("ports") or []) if isinstance(p, dict) and p.get("nodePort")}
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and not p.get("nodePort"):
            np = old.get((p.get("port"), p.get("protocol") or "TCP"))
            if np:
                p["nodePort"] = np


def carry_allocated(new: dict[str, Any], live: Resource) -> None:
    """An update that leaves out what admission allocated (clusterIPs, nodePorts) keeps
    it, as Kubernetes does on PUT; it is not allocated anew."""
    spec = new.get("spec")
    if live.kind != "Service" or not isinstance(spec, dict):
        return
    if (spec.get("type") or "ClusterIP") != "ExternalName" and not spec.get("clusterIP") \
            and not spec.get("clusterIPs"):
        for f in _SERVICE_ALLOCATED:
            if f in live.spec and f not in spec:
                spec[f] = copy.deepcopy(live.spec[f])
    _fix_service(new, live, {"spec": spec})


def check_immutable(live: Resource, new: Resource) -> None:
    """Kubernetes refuses to change these in place; so do we. Raises Invalid."""
    uspec = new.spec
    problem: FieldError | None = None
    if live.kind == "Service" and live.spec.get("type") != "ExternalName":
        want, have = uspec.get("clusterIP"), live.spec.get("clusterIP")
        if want not in (None, "") and have not in (None, "") and want != have \
                and uspec.get("type", "ClusterIP") != "ExternalName":
            problem = FieldError("spec.clusterIP", f"field is immutable (is {have}, manifest says "
                                                   f"{want}); delete the Service and apply again")
    if live.kind == "Deployment" and "selector" in uspec and \
            canonical(uspec.get("selector")) != canonical(live.spec.get("selector")):
        problem = FieldError("spec.selector", "field is immutable; delete the Deployment and apply again")
    if problem is not None:
        raise Invalid(live.kind, live.name, [problem])
