"""Spec validation of ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2). Pure.

The rules are upstream's CRD schema and CEL rules (kubernetes-sigs/network-policy-api,
apis/v1alpha2): tier Admin or Baseline, priority 0..1000, exactly one subject field,
at most 25 rules per direction, each with an action, 1..25 peers of exactly one field,
1..25 protocols of exactly one field, port ranges with start < end, and no named port in
a rule whose peers include nodes or networks. `domainNames` is refused: podnet cannot
enforce it (it would need DNS-snooped address sets), and a peer that silently matched
nothing would break an allow-list.
"""
from __future__ import annotations

from typing import Any, Mapping

from podnet.api.cluster_policy import ACTIONS, TIERS
from podnet.api.errors import FieldError
from podnet.api.fields import (Errs, at, check_cidr, check_enum, check_int, check_list, check_map,
                               check_port_name, check_selector, check_str, show)

MAX_ITEMS = 25
INGRESS_PEERS = ("namespaces", "pods")
EGRESS_PEERS = ("namespaces", "pods", "nodes", "networks", "domainNames")
PROTOCOL_FIELDS = ("tcp", "udp", "sctp", "destinationNamedPort")


def _one_of(m: Mapping[str, Any], fields: tuple[str, ...], path: str, errs: Errs) -> str | None:
    """Exactly one of `fields` set (upstream's MinProperties=1, MaxProperties=1)."""
    unknown = [k for k in m if k not in fields]
    for k in unknown:
        errs.append(FieldError(at(path, str(k)), f"unknown field (expected one of {', '.join(fields)})"))
    present = [k for k in fields if m.get(k) is not None]
    if len(present) != 1:
        if not unknown:
            errs.append(FieldError(path, f"must set exactly one of {', '.join(fields)}"
                                         + (f", not {', '.join(present)}" if present else "")))
        return None
    return present[0]


def _count(items: list[Any], path: str, errs: Errs, lo: int = 1) -> None:
    if len(items) > MAX_ITEMS:
        errs.append(FieldError(path, f"has {len(items)} items; at most {MAX_ITEMS} are allowed"))
    if len(items) < lo:
        errs.append(FieldError(path, "must not be empty" if lo == 1 else f"needs at least {lo} items"))


def _namespaced_pod(v: Any, path: str, errs: Errs) -> None:
    m = check_map(v, path, errs, required=True)
    if "podSelector" not in m:
        errs.append(FieldError(at(path, "podSelector"), "is required ({} selects every pod)"))
    for k in m:
        if k not in ("namespaceSelector", "podSelector"):
            errs.append(FieldError(at(path, str(k)), "unknown field (expected namespaceSelector, podSelector)"))
        else:
            check_selector(m[k], at(path, k), errs)


def _peer(v: Any, path: str, fields: tuple[str, ...], errs: Errs) -> str | None:
    m = check_map(v, path, errs, required=True)
    if not isinstance(v, Mapping):
        return None
    kind = _one_of(m, fields, path, errs)
    if kind in ("namespaces", "nodes"):
        check_selector(m[kind], at(path, kind), errs)
    elif kind == "pods":
        _namespaced_pod(m[kind], at(path, kind), errs)
    elif kind == "networks":
        npath = at(path, "networks")
        nets = check_list(m[kind], npath, errs)
        _count(nets, npath, errs)
        for i, c in enumerate(nets):
            check_cidr(c, at(npath, i), errs, required=True, strict=False)
        if len(set(map(str, nets))) != len(nets):
            errs.append(FieldError(npath, "lists a CIDR twice (it is a set)"))
    elif kind == "domainNames":
        errs.append(FieldError(at(path, "domainNames"), "is not supported by podnet (it cannot be "
                               "enforced here; use networks with the addresses instead)"))
    return kind


def _port(v: Any, path: str, errs: Errs) -> None:
    m = check_map(v, path, errs, required=True)
    kind = _one_of(m, ("number", "range"), path, errs) if isinstance(v, Mapping) else None
    if kind == "number":
        check_int(m["number"], at(path, "number"), errs, 1, 65535)
    elif kind == "range":
        rpath = at(path, "range")
        r = check_map(m["range"], rpath, errs, required=True)
        start = check_int(r.get("start"), at(rpath, "start"), errs, 1, 65535, required=True)
        end = check_int(r.get("end"), at(rpath, "end"), errs, 1, 65535, required=True)
        if start is not None and end is not None and not start < end:
            errs.append(FieldError(rpath, f"start ({start}) must be less than end ({end})"))


def _protocol(v: Any, path: str, errs: Errs) -> str | None:
    m = check_map(v, path, errs, required=True)
    if not isinstance(v, Mapping):
        return None
    kind = _one_of(m, PROTOCOL_FIELDS, path, errs)
    if kind == "destinationNamedPort":
        check_port_name(m[kind], at(path, kind), errs)
    elif kind is not None:
        body = check_map(m[kind], at(path, kind), errs, required=True)
        if isinstance(m[kind], Mapping):
            if "destinationPort" not in body:
                errs.append(FieldError(at(path, kind), "must set destinationPort"))
            for k in body:
                if k != "destinationPort":
                    errs.append(FieldError(at(at(path, kind), str(k)), "unknown field (expected destinationPort)"))
            if body.get("destinationPort") is not None:
                _port(body["destinationPort"], at(at(path, kind), "destinationPort"), errs)
    return kind


def _rule(v: Any, path: str, peer_key: str, fields: tuple[str, ...], errs: Errs) -> None:
    r = check_map(v, path, errs, required=True)
    name = check_str(r.get("name"), at(path, "name"), errs)
    if name is not None and len(name) > 100:
        errs.append(FieldError(at(path, "name"), f"is {len(name)} characters long; at most 100"))
    check_enum(r.get("action"), at(path, "action"), errs, ACTIONS, required=True)
    ppath = at(path, peer_key)
    peers = check_list(r.get(peer_key), ppath, errs, required=True)
    if isinstance(r.get(peer_key), list):
        _count(peers, ppath, errs)
    kinds = {_peer(p, at(ppath, i), fields, errs) for i, p in enumerate(peers)}
    if r.get("protocols") is None:
        return
    prpath = at(path, "protocols")
    protos = check_list(r["protocols"], prpath, errs)
    _count(protos, prpath, errs)
    named = [_protocol(p, at(prpath, i), errs) for i, p in enumerate(protos)]
    if "destinationNamedPort" in named and kinds & {"nodes", "networks", "domainNames"}:
        errs.append(FieldError(prpath, "networks/nodes/domainNames peer cannot be set with "
                                       "destinationNamedPort: those peers have no named ports"))


def cluster_network_policy(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not isinstance(v, Mapping):
        return
    check_enum(spec.get("tier"), at(path, "tier"), errs, TIERS, required=True)
    check_int(spec.get("priority"), at(path, "priority"), errs, 0, 1000, required=True)
    spath = at(path, "subject")
    subject = check_map(spec.get("subject"), spath, errs, required=True)
    if isinstance(spec.get("subject"), Mapping):
        kind = _one_of(subject, ("namespaces", "pods"), spath, errs)
        if kind == "namespaces":
            check_selector(subject[kind], at(spath, kind), errs)
        elif kind == "pods":
            _namespaced_pod(subject[kind], at(spath, kind), errs)
    for direction, peer_key, fields in (("ingress", "from", INGRESS_PEERS), ("egress", "to", EGRESS_PEERS)):
        dpath = at(path, direction)
        rules = check_list(spec.get(direction), dpath, errs)
        if len(rules) > MAX_ITEMS:
            errs.append(FieldError(dpath, f"has {len(rules)} rules; at most {MAX_ITEMS} are allowed"))
        for i, rule in enumerate(rules):
            _rule(rule, at(dpath, i), peer_key, fields, errs)
    if spec.get("tier") is not None and not isinstance(spec.get("tier"), str):
        errs.append(FieldError(at(path, "tier"), f"must be Admin or Baseline, not {show(spec['tier'])}"))
