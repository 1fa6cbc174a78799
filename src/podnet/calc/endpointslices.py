"""The EndpointSlices a Service should have, from its selector and the Pods. Pure;
imports podnet.api only.

The Kubernetes EndpointSlice controller's rules:
- only Services with a selector (without one, the user writes the slices), never
  ExternalName; one addressType per family of the Service (spec.ipFamilies);
- a pod counts when the selector matches, it is in the Service's namespace, it has an IP of
  that family and is not Succeeded/Failed;
- `targetPort` names are resolved per pod (pods may call the port differently); a pod
  lacking a named port is served without that port. Pods with the same resolved ports
  share slices; at most 100 endpoints per slice;
- conditions: serving = pod Ready; terminating = deletionTimestamp set; ready = serving
  and not terminating, or always with `publishNotReadyAddresses`;
- a Service with no matching pod still gets one empty slice per family;
- `zone` is the pod's node's topology.kubernetes.io/zone label; with spec.trafficDistribution
  every ready endpoint gets hints (calc/topology.py: forZones, and forNodes for PreferSameNode);
  with the `service.kubernetes.io/topology-mode: Auto` annotation instead zone hints balanced
  by each zone's CPU, per family over all its slices (calc/topology_auto.py).
Slice names are derived (`<service>-<family>-<hash of ports>[-<n>]`) so a recompute gives
the same names and the controller only writes what differs.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any, Iterable, Mapping

from podnet.api.objects import Pod, Service
from podnet.calc.topology import endpoint_hints
from podnet.calc.topology_auto import INSUFFICIENT_NODE_INFO, assign_hints, hints_enabled

MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "podnet-controller"
SERVICE_NAME = "kubernetes.io/service-name"
MAX_PER_SLICE = 100


def _families(svc: Service) -> list[str]:
    fams = [f for f in svc.ip_families if f in ("IPv4", "IPv6")]
    if not fams:
        fams = ["IPv6" if ":" in ip else "IPv4" for ip in svc.cluster_ips]
    return fams or ["IPv4"]


def _ip_of(pod: Pod, family: str) -> str | None:
    for ip in pod.pod_ips:
        try:
            if ipaddress.ip_address(ip).version == (4 if family == "IPv4" else 6):
                return ip
        except ValueError:
            continue
    return None


def resolve_ports(svc: Service, pod: Pod) -> tuple[tuple[str, int, str], ...]:
    """(name, port, protocol) of each Service port on this pod; unresolvable names dropped."""
    out = []
    for sp in svc.ports:
        target = sp.effective_target
        if isinstance(target, str):
            port = pod.named_port(target, sp.protocol)
            if port is None:
                continue
        else:
            port = int(target)
        out.append((sp.name, port, sp.protocol))
    return tuple(out)


def _endpoint(svc: Service, pod: Pod, ip: str, zones: Mapping[str, str], distribution: str) -> dict[str, Any]:
    terminating = pod.deletion_timestamp is not None
    serving = pod.ready
    ready = svc.publish_not_ready or (serving and not terminating)
    ep: dict[str, Any] = {"addresses": [ip],
                          "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                          "targetRef": {"kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                                        **({"uid": pod.uid} if pod.uid else {})}}
    if pod.node_name:
        ep["nodeName"] = pod.node_name
    zone = zones.get(pod.node_name, "") if pod.node_name else ""
    if zone:
        ep["zone"] = zone
    hints = endpoint_hints(distribution, zone, pod.node_name) if ready else None
    if hints:
        ep["hints"] = hints
    if pod.hostname and pod.subdomain == svc.name:
        ep["hostname"] = pod.hostname
    return ep


def _slice(svc: Service, name: str, family: str, ports: tuple[tuple[str, int, str], ...],
           endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    md: dict[str, Any] = {"namespace": svc.namespace, "name": name,
                          "labels": {SERVICE_NAME: svc.name, MANAGED_BY: CONTROLLER}}
    if svc.uid:
        md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": svc.name,
                                  "uid": svc.uid, "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": md,
            "addressType": family, "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}


def desired_slices(svc: Service, pods: Iterable[Pod], zones: Mapping[str, str] | None = None,
                   ratios: Mapping[str, float] | str = INSUFFICIENT_NODE_INFO) -> list[dict[str, Any]]:
    """The slices (manifests) `svc` should have; [] when the controller must not manage it.
    `zones`: node name -> its zone label (nodes without one left out); `ratios`: each
    zone's share of the cluster's CPU, or why there are none (topology_auto.zone_ratios)."""
    zones = zones or {}
    auto = hints_enabled(svc.annotations)
    distribution = "" if auto else svc.traffic_distribution
    if not svc.has_selector or svc.type == "ExternalName":
        return []
    selector = svc.selector
    chosen = [p for p in pods if p.namespace == svc.namespace and selector.matches(p.labels)
              and p.phase not in ("Succeeded", "Failed")]
    out = []
    for fam in _families(svc):
        tag = fam.lower()
        groups: dict[tuple[tuple[str, int, str], ...], list[dict[str, Any]]] = {}
        for pod in chosen:
            ip = _ip_of(pod, fam)
            if ip is not None:
                groups.setdefault(resolve_ports(svc, pod), []).append(
                    _endpoint(svc, pod, ip, zones, distribution))
        if not groups:
            out.append(_slice(svc, f"{svc.name}-{tag}", fam, (), []))
            continue
        ordered = sorted(groups.items())
        for _, eps in ordered:
            eps.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
        if auto:
            assign_hints([e for _, eps in ordered for e in eps], ratios)
        for ports, eps in ordered:
            h = hashlib.sha256(json.dumps(ports).encode()).hexdigest()[:5]
            for i in range(0, len(eps), MAX_PER_SLICE):
                n = i // MAX_PER_SLICE
                name = f"{svc.name}-{tag}-{h}" + (f"-{n}" if n else "")
                out.append(_slice(svc, name, fam, ports, eps[i:i + MAX_PER_SLICE]))
    return out


def same_slice(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal in what the controller owns (ignores resourceVersion, uid, timestamps)."""
    def key(d: dict[str, Any]) -> Any:
        md = d.get("metadata") or {}
        return (d.get("addressType"), d.get("endpoints") or [], d.get("ports") or [],
                md.get("labels") or {}, md.get("ownerReferences") or [])
    return bool(key(a) == key(b))
