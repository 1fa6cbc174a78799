"""Spec validation of the network kinds: EndpointSlice, NetworkPolicy, IPPool. Pure.

The rules are Kubernetes' (pkg/apis/core/validation, networking/validation) where a
Kubernetes rule exists, and Calico's for IPPool (block sizes 20..32 for IPv4, 116..128
for IPv6, never larger than the pool).
"""
from __future__ import annotations

from typing import Any, Mapping

from podnet.api.errors import FieldError
from podnet.api.fields import (Errs, at, check_bool, check_cidr, check_enum, check_int,
                               check_int_or_port_name, check_ip, check_list,
                               check_map, check_name, check_protocol, check_selector,
                               check_str, label_value_error, show)
from podnet.api.selector import parse_calico

BLOCK_SIZES = {4: (20, 32), 6: (116, 128)}


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
        _zone_name(e.get("zone"), at(p, "zone"), errs)
        _hints(e.get("hints"), at(p, "hints"), errs)
    for i, port in enumerate(check_list(raw.get("ports"), "ports", errs)):
        p = at("ports", i)
        port = check_map(port, p, errs, required=True)
        check_int(port.get("port"), at(p, "port"), errs, 1, 65535)
        check_protocol(port.get("protocol"), at(p, "protocol"), errs)
        check_name(port.get("name"), at(p, "name"), errs, "label")


def _zone_name(v: Any, path: str, errs: Errs) -> str | None:
    s = check_str(v, path, errs)
    err = label_value_error(s) if s else None
    if err:
        errs.append(FieldError(path, f"{show(s)} {err}"))
    return s


def _hints(v: Any, path: str, errs: Errs) -> None:
    """Kubernetes' validateEndpointHints: at most 8 zones and 8 nodes, each named once."""
    hints = check_map(v, path, errs)
    for key, rule in (("forZones", "zone"), ("forNodes", "subdomain")):
        kpath = at(path, key)
        items = check_list(hints.get(key), kpath, errs)
        if len(items) > 8:
            errs.append(FieldError(kpath, f"has {len(items)} entries, at most 8"))
        seen: set[str] = set()
        for i, h in enumerate(items):
            npath = at(at(kpath, i), "name")
            h = check_map(h, at(kpath, i), errs, required=True)
            if rule == "zone":
                name = _zone_name(h.get("name"), npath, errs) if h else None
            else:
                name = check_name(h.get("name"), npath, errs, rule) if h else None
            if isinstance(items[i], Mapping) and h.get("name") in (None, ""):
                errs.append(FieldError(npath, "is required"))
            elif name in seen:
                errs.append(FieldError(npath, f"{show(name)} is listed twice"))
            seen.add(name or "")


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
# Calico's ipipMode: podnet has no IP-in-IP encapsulation, because the kernels it runs on
# here have no such device (`ip link add t type ipip` answers "Unknown device type"): refused,
# never accepted and silently ignored. vxlanMode is Calico's: Always, CrossSubnet (VXLAN only
# between nodes on different subnets) or Never (calc/encap.py).
IPIP_REFUSED = ("podnet has no IP-in-IP encapsulation: this kernel has no ipip device "
                "(`ip link add ... type ipip`: Unknown device type); use vxlanMode, or BGP routing")


def _encapsulation(spec: Mapping[str, Any], path: str, errs: Errs) -> None:
    check_enum(spec.get("vxlanMode"), at(path, "vxlanMode"), errs, ("Always", "CrossSubnet", "Never"))
    ipip = spec.get("ipipMode")
    if ipip is not None and ipip != "Never":
        errs.append(FieldError(at(path, "ipipMode"), f"{show(ipip)}: {IPIP_REFUSED}"))
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
    check_bool(spec.get("disableBGPExport"), at(path, "disableBGPExport"), errs)
    _encapsulation(spec, path, errs)
    upath = at(path, "allowedUses")
    uses = check_list(spec.get("allowedUses"), upath, errs)
    for i, u in enumerate(uses):
        check_enum(u, at(upath, i), errs, ("Workload", "Tunnel", "LoadBalancer"))
    if "LoadBalancer" in uses and len(set(map(str, uses))) > 1:
        errs.append(FieldError(upath, "LoadBalancer may not be combined with other uses (as Calico refuses it)"))
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
