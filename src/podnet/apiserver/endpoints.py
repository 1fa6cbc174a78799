"""core/v1 Endpoints, derived from EndpointSlices (read-only). Pure.

podnet stores EndpointSlices only (the controller writes them); old clients still read
Endpoints, so the API serves one Endpoints per Service name that has slices, built from
the slices labelled `kubernetes.io/service-name`: ready endpoints under `addresses`, the
rest under `notReadyAddresses`, one subset per distinct port list (as the endpoints
controller groups them). Its resourceVersion is the newest slice's.
"""
from __future__ import annotations

from typing import Any, Iterable

from podnet.api.objects import Resource

SERVICE_NAME = "kubernetes.io/service-name"


def _ports(slice_raw: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in slice_raw.get("ports") or []:
        if isinstance(p, dict) and p.get("port") is not None:
            d: dict[str, Any] = {"port": p["port"], "protocol": p.get("protocol") or "TCP"}
            if p.get("name"):
                d["name"] = p["name"]
            out.append(d)
    return sorted(out, key=lambda d: (d.get("name", ""), d["port"], d["protocol"]))


def _address(ip: str, ep: dict[str, Any]) -> dict[str, Any]:
    a: dict[str, Any] = {"ip": ip}
    if ep.get("nodeName"):
        a["nodeName"] = ep["nodeName"]
    if ep.get("hostname"):
        a["hostname"] = ep["hostname"]
    if isinstance(ep.get("targetRef"), dict):
        a["targetRef"] = dict(ep["targetRef"])
    return a


def endpoints_for(namespace: str, name: str, slices: Iterable[Resource]) -> dict[str, Any]:
    subsets: dict[str, dict[str, Any]] = {}
    rv, created = 0, ""
    for s in slices:
        rv = max(rv, s.resource_version)
        ts = str(s.metadata.get("creationTimestamp") or "")
        created = min(created, ts) if created and ts else (created or ts)
        ports = _ports(s.raw)
        sub = subsets.setdefault(repr(ports), {"ports": ports} if ports else {})
        for ep in s.raw.get("endpoints") or []:
            if not isinstance(ep, dict):
                continue
            ready = (ep.get("conditions") or {}).get("ready")
            field = "addresses" if ready is None or ready else "notReadyAddresses"
            for ip in ep.get("addresses") or []:
                sub.setdefault(field, []).append(_address(str(ip), ep))
    md: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": str(rv)}
    if created:
        md["creationTimestamp"] = created
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints", "metadata": md}
    subs = [s for s in subsets.values() if s.get("addresses") or s.get("notReadyAddresses")]
    for subset in subs:
        for f in ("addresses", "notReadyAddresses"):
            if f in subset:
                subset[f].sort(key=lambda a: a["ip"])
    if subs:
        out["subsets"] = subs
    return out


def derive(slices: Iterable[Resource]) -> list[dict[str, Any]]:
    """Every Endpoints the slices make, sorted by (namespace, name)."""
    by: dict[tuple[str, str], list[Resource]] = {}
    for s in slices:
        svc = s.labels.get(SERVICE_NAME)
        if svc:
            by.setdefault((s.namespace, svc), []).append(s)
    return [endpoints_for(ns, name, group) for (ns, name), group in sorted(by.items())]
