"""Spec validation of the BGP kinds, BGPConfiguration and BGPPeer (Calico's rules). Pure.

BGPConfiguration `default` is the cluster's: its AS number (1..4294967295, Calico's
default 64512), whether nodes peer in a full mesh, and which Service ranges the nodes
advertise. A BGPPeer names either one peer (peerIP + asNumber) or the nodes matched by
peerSelector (route reflectors); `node` or `nodeSelector` limit which nodes peer with it.
"""
from __future__ import annotations

from typing import Any, Mapping

from podnet.api.errors import FieldError
from podnet.api.fields import (Errs, at, check_bool, check_cidr, check_int, check_ip, check_list,
                               check_map, check_str, show)
from podnet.api.selector import parse_calico

MAX_ASN = 4294967295
SERVICE_RANGES = ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs")


def _selector(v: Any, path: str, errs: Errs) -> None:
    s = check_str(v, path, errs)
    if s is not None and s.strip() not in ("", "all()"):
        try:
            parse_calico(s)
        except ValueError as e:
            errs.append(FieldError(path, f"{show(s)} is not a valid selector: {e}"))


def bgp_configuration(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if spec.get("asNumber") is not None:
        check_int(spec.get("asNumber"), at(path, "asNumber"), errs, 1, MAX_ASN)
    check_bool(spec.get("nodeToNodeMeshEnabled"), at(path, "nodeToNodeMeshEnabled"), errs)
    for field in SERVICE_RANGES:
        fpath = at(path, field)
        for i, item in enumerate(check_list(spec.get(field), fpath, errs)):
            ipath = at(fpath, i)
            m = check_map(item, ipath, errs)
            if isinstance(item, Mapping):
                check_cidr(m.get("cidr"), at(ipath, "cidr"), errs, required=True)


def bgp_peer(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not isinstance(v, Mapping):
        return
    has_ip = spec.get("peerIP") is not None
    has_sel = spec.get("peerSelector") is not None
    if has_ip and has_sel:
        errs.append(FieldError(at(path, "peerSelector"), "may not be set together with peerIP"))
    elif not has_ip and not has_sel:
        errs.append(FieldError(at(path, "peerIP"), "is required (or peerSelector)"))
    if has_ip:
        check_ip(spec.get("peerIP"), at(path, "peerIP"), errs)
        check_int(spec.get("asNumber"), at(path, "asNumber"), errs, 1, MAX_ASN, required=True)
    if has_sel:
        _selector(spec.get("peerSelector"), at(path, "peerSelector"), errs)
    check_str(spec.get("node"), at(path, "node"), errs)
    if spec.get("node") is not None and spec.get("nodeSelector") is not None:
        errs.append(FieldError(at(path, "nodeSelector"), "may not be set together with node"))
    _selector(spec.get("nodeSelector"), at(path, "nodeSelector"), errs)
