"""Spec validation of the network kinds: Service, EndpointSlice, NetworkPolicy, IPPool. Pure.

The rules are Kubernetes' (pkg/apis/core/validation, networking/validation) where a
Kubernetes rule exists, and Calico's for IPPool (block sizes 20..32 for IPv4, 116..128
for IPv6, never larger than the pool).
"""
from __future__ import annotations

from typing import Any, Mapping

from podnet.api.defaults import NODE_PORT_RANGE
from podnet.api.errors import FieldError
from podnet.api.fields import (Errs, at, check_bool, check_cidr, check_enum, check_int,
                               check_int_or_port_name, check_ip, check_labels, check_list,
                               check_map, check_name, check_protocol, check_selector,
                               check_str, show)
from podnet.api.selector import parse_calico

SERVICE_TYPES = ("ClusterIP", "NodePort", "ExternalName")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
BLOCK_SIZES = {4: (20, 32), 6: (116, 128)}


# ---- Service ----------------------------------------------------------------------------
def service(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not spec and not isinstance(v, Mapping):
        return
    typ = spec.get("type", "ClusterIP")
    if typ == "LoadBalancer":
        errs.append(FieldError(at(path, "type"), '"LoadBalancer" is not supported by podnet '
                                                 "(use NodePort)"))
        typ = None
    else:
        typ = check_enum(typ, at(path, "type"), errs, SERVICE_TYPES)
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
    for f in ("internalTrafficPolicy", "externalTrafficPolicy"):
        check_enum(spec.get(f), at(path, f), errs, ("Cluster", "Local"))


def _service_ports(spec: Mapping[str, Any], path: str, errs: Errs, typ: str | None,
                   headless: bool) -> None:
    ppath = at(path, "ports")
    ports = check_list(spec.get("ports"), ppath, errs)
    if not ports and typ in ("ClusterIP", "NodePort") and not headless and spec.get("ports") is None:
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
            if typ != "NodePort":
                errs.append(FieldError(npath, "may only be set when type is NodePort"))
            else:
                check_int(port.get("nodePort"), npath, errs, lo, hi)


def _cluster_ips(spec: Mapping[str, Any], path: str, errs: Errs, typ: str | None) -> None:
    cluster_ip = spec.get("clusterIP")
    families: list[int] = []
    if cluster_ip == "None":
        if typ == "NodePort":
            errs.append(FieldError(at(path, "clusterIP"),
                                   '"None" (headless) is not allowed for type NodePort'))
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


# ---- EndpointSlice ----------------------------------------------------------------------
def endpoint_slice(raw: Mapping[str, Any], errs: Errs) -> None:
    atype = check_enum(raw.get("addressType"), "addressType", errs, ("IPv4", "IPv6", "FQDN"),
                       required=True)
    for i, e in enumerate(check_list(raw.get("endpoints"), "endpoints", errs)):
        p = at("endpoints", i)
        e = check_map(e, p, errs, required=True)
        addrs = check_list(e.get("addresses"), at(p, "addresses"), errs, required=True)
        if len(addrs) > 100:
            errs.append(FieldError(at(p, "addresses"), "has more than 100 entries"))
        for j, a in enumerate(addrs):
            ap = at(at(p, "addresses"), j)
            if atype == "FQDN":
                check_name(a, ap, errs, "subdomain", required=True)
                continue
            ip = check_ip(a, ap, errs)
            if ip is not None and atype and f"IPv{ip.version}" != atype:
                errs.append(FieldError(ap, f"{show(a)} is not an {atype} address"))
        cond = check_map(e.get("conditions"), at(p, "conditions"), errs)
        for c in ("ready", "serving", "terminating"):
            check_bool(cond.get(c), at(at(p, "conditions"), c), errs)
        check_name(e.get("nodeName"), at(p, "nodeName"), errs, "subdomain")
        check_name(e.get("hostname"), at(p, "hostname"), errs, "label")
    for i, port in enumerate(check_list(raw.get("ports"), "ports", errs)):
        p = at("ports", i)
        port = check_map(port, p, errs, required=True)
        check_int(port.get("port"), at(p, "port"), errs, 1, 65535)
        check_protocol(port.get("protocol"), at(p, "protocol"), errs)
        check_name(port.get("name"), at(p, "name"), errs, "label")


# ---- NetworkPolicy ----------------------------------------------------------------------
def network_policy(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if spec.get("podSelector") is not None:
        check_selector(spec.get("podSelector"), at(path, "podSelector"), errs)
    tpath = at(path, "policyTypes")
    types = check_list(spec.get("policyTypes"), tpath, errs)
    for i, t in enumerate(types):
        check_enum(t, at(tpath, i), errs, ("Ingress", "Egress"))
    if len(set(map(str, types))) != len(types):
        errs.append(FieldError(tpath, f"{show(types)} lists a type twice"))
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        dpath = at(path, direction)
        for i, rule in enumerate(check_list(spec.get(direction), dpath, errs)):
            rp = at(dpath, i)
            rule = check_map(rule, rp, errs)
            for j, peer in enumerate(check_list(rule.get(peer_key), at(rp, peer_key), errs)):
                _peer(peer, at(at(rp, peer_key), j), errs)
            for j, port in enumerate(check_list(rule.get("ports"), at(rp, "ports"), errs)):
                _policy_port(port, at(at(rp, "ports"), j), errs)


def _peer(v: Any, path: str, errs: Errs) -> None:
    peer = check_map(v, path, errs, required=True)
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if not present:
        if isinstance(v, Mapping):
            errs.append(FieldError(path, "must set podSelector, namespaceSelector or ipBlock"))
        return
    if "ipBlock" in present and len(present) > 1:
        errs.append(FieldError(path, "ipBlock may not be combined with podSelector or namespaceSelector"))
    for k in ("podSelector", "namespaceSelector"):
        if peer.get(k) is not None:
            check_selector(peer[k], at(path, k), errs)
    if peer.get("ipBlock") is None:
        return
    bpath = at(path, "ipBlock")
    block = check_map(peer["ipBlock"], bpath, errs)
    cidr = check_cidr(block.get("cidr"), at(bpath, "cidr"), errs, required=True, strict=False)
    for i, e in enumerate(check_list(block.get("except"), at(bpath, "except"), errs)):
        ep = at(at(bpath, "except"), i)
        ex = check_cidr(e, ep, errs, strict=False)
        if ex is None or cidr is None:
            continue
        if ex.version != cidr.version:
            errs.append(FieldError(ep, f"{show(e)} is not in the same IP family as cidr {cidr}"))
        elif not (ex.subnet_of(cidr) and ex.prefixlen > cidr.prefixlen):  # type: ignore[arg-type]
            errs.append(FieldError(ep, f"{show(e)} must be a strict subset of cidr {cidr}"))


def _policy_port(v: Any, path: str, errs: Errs) -> None:
    port = check_map(v, path, errs, required=True)
    check_protocol(port.get("protocol"), at(path, "protocol"), errs)
    num = port.get("port")
    checked = check_int_or_port_name(num, at(path, "port"), errs) if num is not None else None
    end = port.get("endPort")
    if end is None:
        return
    epath = at(path, "endPort")
    end_ok = check_int(end, epath, errs, 1, 65535)
    if num is None:
        errs.append(FieldError(epath, "may only be set together with a numeric port"))
    elif isinstance(num, str):
        errs.append(FieldError(epath, f"may only be set with a numeric port, not the named port {show(num)}"))
    elif end_ok is not None and isinstance(checked, int) and end_ok < checked:
        errs.append(FieldError(epath, f"{end_ok} must be greater than or equal to port ({checked})"))


# ---- IPPool -----------------------------------------------------------------------------
def ip_pool(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not spec and not isinstance(v, Mapping):
        return
    net = check_cidr(spec.get("cidr"), at(path, "cidr"), errs, required=True)
    bpath = at(path, "blockSize")
    bs = spec.get("blockSize")
    if net is not None and bs is not None:
        lo, hi = BLOCK_SIZES[net.version]
        size = check_int(bs, bpath, errs, lo, hi)
        if size is not None and size < net.prefixlen:
            errs.append(FieldError(bpath, f"{size} is larger than the pool itself "
                                          f"(/{net.prefixlen}); use a value >= {net.prefixlen}"))
    elif bs is not None:
        check_int(bs, bpath, errs, 0, 128)
    check_bool(spec.get("natOutgoing"), at(path, "natOutgoing"), errs)
    check_bool(spec.get("disabled"), at(path, "disabled"), errs)
    sel = spec.get("nodeSelector")
    spath = at(path, "nodeSelector")
    if isinstance(sel, Mapping):
        check_selector(sel, spath, errs)
    elif sel is not None:
        s = check_str(sel, spath, errs)
        if s is not None and s.strip() not in ("", "all()"):
            try:
                parse_calico(s)
            except ValueError as e:
                errs.append(FieldError(spath, f"{show(s)} is not a valid selector: {e}"))
