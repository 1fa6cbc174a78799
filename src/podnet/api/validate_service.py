"""Spec validation of a Service. Pure.

The rules are Kubernetes' (pkg/apis/core/validation) where a Kubernetes rule exists.
"""
from __future__ import annotations

from typing import Any, Mapping

from podnet.api.defaults import NODE_PORT_RANGE
from podnet.api.services import TRAFFIC_DISTRIBUTIONS
from podnet.api.errors import FieldError
from podnet.api.fields import (Errs, at, check_bool, check_cidr, check_enum, check_int,
                               check_int_or_port_name, check_ip, check_labels, check_list,
                               check_map, check_name, check_protocol, check_str, qualified_name_error, show)

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
# The ServiceSpec fields podnet implements; anything else is refused, never ignored.
SPEC_FIELDS = frozenset({
    "ports", "selector", "clusterIP", "clusterIPs", "type", "externalName", "sessionAffinity",
    "sessionAffinityConfig", "ipFamilies", "ipFamilyPolicy", "publishNotReadyAddresses",
    "internalTrafficPolicy", "externalTrafficPolicy", "externalIPs",
    "loadBalancerSourceRanges", "loadBalancerClass", "allocateLoadBalancerNodePorts",
    "healthCheckNodePort", "trafficDistribution"})
PORT_FIELDS = frozenset({"name", "protocol", "appProtocol", "port", "targetPort", "nodePort"})
# Kubernetes fields podnet does not implement (yet): what a user gets instead.
NOT_IMPLEMENTED = {
    "loadBalancerIP": "deprecated in Kubernetes; the load-balancer controller picks the address",
}
UNKNOWN = "unknown field (podnet refuses what it would ignore)"


# ---- Service ----------------------------------------------------------------------------
def service(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not spec and not isinstance(v, Mapping):
        return
    _known_fields(spec, path, errs)
    typ = check_enum(spec.get("type", "ClusterIP"), at(path, "type"), errs, SERVICE_TYPES)
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    _service_ports(spec, path, errs, typ, headless)
    if typ == "ExternalName":
        ext = check_str(spec.get("externalName"), at(path, "externalName"), errs, required=True)
        if ext is not None:
            check_name(ext.rstrip(".").lower(), at(path, "externalName"), errs, "subdomain")
        if cluster_ip not in (None, ""):
            errs.append(FieldError(at(path, "clusterIP"), "must not be set for type ExternalName"))
        if spec.get("clusterIPs"):
            errs.append(FieldError(at(path, "clusterIPs"), "must not be set for type ExternalName"))
    else:
        _cluster_ips(spec, path, errs, typ)
    check_labels(spec.get("selector"), at(path, "selector"), errs)
    _external_ips(spec, path, errs, typ)
    _load_balancer(spec, path, errs, typ)
    affinity = check_enum(spec.get("sessionAffinity"), at(path, "sessionAffinity"), errs,
                          ("None", "ClientIP"))
    cfg = check_map(spec.get("sessionAffinityConfig"), at(path, "sessionAffinityConfig"), errs)
    cip = check_map(cfg.get("clientIP"), at(path, "sessionAffinityConfig.clientIP"), errs)
    tpath = at(path, "sessionAffinityConfig.clientIP.timeoutSeconds")
    if cip.get("timeoutSeconds") is not None:
        check_int(cip.get("timeoutSeconds"), tpath, errs, 1, 86400)
        if affinity != "ClientIP":
            errs.append(FieldError(tpath, "may only be set when sessionAffinity is ClientIP"))
    check_bool(spec.get("publishNotReadyAddresses"), at(path, "publishNotReadyAddresses"), errs)
    if spec.get("trafficDistribution") is not None:  # "" too: Kubernetes refuses it
        check_enum(spec.get("trafficDistribution"), at(path, "trafficDistribution"), errs,
                   TRAFFIC_DISTRIBUTIONS)
    for f in ("internalTrafficPolicy", "externalTrafficPolicy"):
        check_enum(spec.get(f), at(path, f), errs, ("Cluster", "Local"))
    if spec.get("externalTrafficPolicy") is not None and typ in ("ClusterIP", "ExternalName") \
            and not spec.get("externalIPs"):
        errs.append(FieldError(at(path, "externalTrafficPolicy"),
                               "may only be set when type is NodePort or LoadBalancer or the "
                               "Service has externalIPs (it decides nothing for a ClusterIP)"))


def _external_ips(spec: Mapping[str, Any], path: str, errs: Errs, typ: str | None) -> None:
    """Kubernetes' ValidateNonSpecialIP: an address a node could be sent, nothing special."""
    epath = at(path, "externalIPs")
    ips = check_list(spec.get("externalIPs"), epath, errs)
    if ips and typ == "ExternalName":
        errs.append(FieldError(epath, "must not be set for type ExternalName"))
    seen: set[str] = set()
    for i, s in enumerate(ips):
        ip = check_ip(s, at(epath, i), errs)
        if ip is None:
            continue
        if ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast:
            errs.append(FieldError(at(epath, i), f"{show(s)} may not be unspecified, loopback, "
                                                 "link-local or multicast"))
        if str(ip) in seen:
            errs.append(FieldError(at(epath, i), f"{show(s)} is listed twice"))
        seen.add(str(ip))


def _load_balancer(spec: Mapping[str, Any], path: str, errs: Errs, typ: str | None) -> None:
    """Kubernetes' rules for the LoadBalancer-only fields."""
    for f in ("loadBalancerSourceRanges", "loadBalancerClass", "allocateLoadBalancerNodePorts"):
        if _set(spec.get(f)) and typ not in ("LoadBalancer", None):
            errs.append(FieldError(at(path, f), "may only be used when type is LoadBalancer"))
    rpath = at(path, "loadBalancerSourceRanges")
    for i, r in enumerate(check_list(spec.get("loadBalancerSourceRanges"), rpath, errs)):
        check_cidr(r.strip() if isinstance(r, str) else r, at(rpath, i), errs, strict=False)
    cls = check_str(spec.get("loadBalancerClass"), at(path, "loadBalancerClass"), errs)
    err = qualified_name_error(cls) if cls else None
    if err:
        errs.append(FieldError(at(path, "loadBalancerClass"), f"{show(cls)} {err}"))
    check_bool(spec.get("allocateLoadBalancerNodePorts"), at(path, "allocateLoadBalancerNodePorts"), errs)
    if spec.get("healthCheckNodePort") is not None:
        lo, hi = NODE_PORT_RANGE
        check_int(spec.get("healthCheckNodePort"), at(path, "healthCheckNodePort"), errs, lo, hi)


def _set(v: Any) -> bool:
    """Kubernetes' "unset": absent, null, or an empty list/string (as `get -o yaml` shows)."""
    return v not in (None, "", [], {})


def _known_fields(spec: Mapping[str, Any], path: str, errs: Errs) -> None:
    for k in sorted(str(k) for k in spec):
        if k in SPEC_FIELDS or not _set(spec.get(k)):
            continue
        if k in NOT_IMPLEMENTED:
            errs.append(FieldError(at(path, k), f"podnet does not implement {k} ({NOT_IMPLEMENTED[k]})"))
        else:
            errs.append(FieldError(at(path, k), UNKNOWN))


def _service_ports(spec: Mapping[str, Any], path: str, errs: Errs, typ: str | None,
                   headless: bool) -> None:
    ppath = at(path, "ports")
    ports = check_list(spec.get("ports"), ppath, errs)
    if not ports and typ in ("ClusterIP", "NodePort", "LoadBalancer") and not headless and spec.get("ports") is None:
        errs.append(FieldError(ppath, "is required (at least one port), unless the Service "
                                      "is headless (clusterIP: None)"))
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    lo, hi = NODE_PORT_RANGE
    for i, port in enumerate(ports):
        p = at(ppath, i)
        port = check_map(port, p, errs, required=True)
        if not port:
            continue
        errs.extend(FieldError(at(p, str(k)), UNKNOWN) for k in sorted(map(str, port))
                    if k not in PORT_FIELDS)
        num = check_int(port.get("port"), at(p, "port"), errs, 1, 65535, required=True)
        proto = check_protocol(port.get("protocol"), at(p, "protocol"), errs)
        name = check_name(port.get("name"), at(p, "name"), errs, "label")
        if len(ports) > 1 and not port.get("name"):
            errs.append(FieldError(at(p, "name"), "is required when the Service has more than one port"))
        if name:
            if name in names:
                errs.append(FieldError(at(p, "name"), f"{show(name)} is used by another port"))
            names.add(name)
        if num is not None:
            if (num, proto) in seen:
                errs.append(FieldError(p, f"port {num}/{proto} is listed twice"))
            seen.add((num, proto))
        if port.get("targetPort") is not None:
            check_int_or_port_name(port.get("targetPort"), at(p, "targetPort"), errs)
        if port.get("nodePort") is not None:
            npath = at(p, "nodePort")
            if typ not in ("NodePort", "LoadBalancer"):
                errs.append(FieldError(npath, "may only be set when type is NodePort or LoadBalancer"))
            else:
                check_int(port.get("nodePort"), npath, errs, lo, hi)


def _cluster_ips(spec: Mapping[str, Any], path: str, errs: Errs, typ: str | None) -> None:
    cluster_ip = spec.get("clusterIP")
    families: list[int] = []
    if cluster_ip == "None":
        if typ in ("NodePort", "LoadBalancer"):
            errs.append(FieldError(at(path, "clusterIP"),
                                   f'"None" (headless) is not allowed for type {typ}'))
    elif cluster_ip not in (None, ""):
        ip = check_ip(cluster_ip, at(path, "clusterIP"), errs)
        if ip is not None:
            families.append(ip.version)
    ips = check_list(spec.get("clusterIPs"), at(path, "clusterIPs"), errs)
    if len(ips) > 2:
        errs.append(FieldError(at(path, "clusterIPs"), f"has {len(ips)} entries, at most 2 are allowed"))
    if ips and cluster_ip not in (None, "") and ips[0] != cluster_ip:
        errs.append(FieldError(at(path, "clusterIPs[0]"),
                               f"{show(ips[0])} must equal spec.clusterIP ({show(cluster_ip)})"))
    fams_of_ips: list[int] = []
    for i, s in enumerate(ips):
        if s == "None":
            if i > 0 or len(ips) > 1:
                errs.append(FieldError(at(at(path, "clusterIPs"), i), '"None" must be the only entry'))
            continue
        ip = check_ip(s, at(at(path, "clusterIPs"), i), errs)
        if ip is not None:
            fams_of_ips.append(ip.version)
    if len(fams_of_ips) == 2 and fams_of_ips[0] == fams_of_ips[1]:
        errs.append(FieldError(at(path, "clusterIPs"), "must hold one IPv4 and one IPv6 address"))
    fpath = at(path, "ipFamilies")
    fams = check_list(spec.get("ipFamilies"), fpath, errs)
    for i, f in enumerate(fams):
        check_enum(f, at(fpath, i), errs, IP_FAMILIES)
    if len(fams) > 2 or len(set(map(str, fams))) != len(fams):
        errs.append(FieldError(fpath, f"{show(fams)} must list each family at most once"))
    policy = check_enum(spec.get("ipFamilyPolicy"), at(path, "ipFamilyPolicy"), errs, IP_FAMILY_POLICIES)
    if policy in (None, "SingleStack") and (len(fams) > 1 or len(fams_of_ips) > 1):
        errs.append(FieldError(at(path, "ipFamilyPolicy"),
                               "must be PreferDualStack or RequireDualStack for two IP families"))
    first = fams_of_ips[0] if fams_of_ips else (families[0] if families else None)
    if first is not None and fams and fams[0] in IP_FAMILIES and fams[0] != f"IPv{first}":
        errs.append(FieldError(at(fpath, 0), f"{show(fams[0])} does not match the family of "
                                             f"the cluster IP (IPv{first})"))
