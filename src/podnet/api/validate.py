"""Validation of manifests with the Kubernetes rules that matter to podnet. Pure.

`validate_object(obj)` returns every problem of one object as `FieldError`s (path +
message); `validate_manifests(manifests)` checks a whole set and raises `InvalidObjects`
whose lines name file, document, kind, namespace/name and field path:
`web.yaml doc 2 Service default/web: spec.ports[0].port: 70000 is not in 1..65535`.
Kind-specific spec rules for the network kinds live in validate_network.py and
validate_service.py.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from podnet.api.codec import Manifest
from podnet.api.policy import STAGED_ANNOTATION
from podnet.api.errors import FieldError, InvalidObjects, object_label
from podnet.api.fields import (Errs, at, check_bool, check_cidr, check_enum, check_int,
                               check_ip, check_labels, check_list, check_map, check_name,
                               check_port_name, check_protocol, check_selector, check_str, show)
from podnet.api.objects import (ALT_API_VERSIONS, INTERNAL_KINDS, KINDS, Resource, is_namespaced,
                                requested_ips)
from podnet.api.selector import LabelSelector
from podnet.api import validate_bgp
from podnet.api import validate_network as net
from podnet.api import validate_cluster_policy, validate_service
from podnet.api.validate_meta import check_object_meta, object_size_error

# How Kubernetes checks each kind's metadata.name.
NAME_RULES: dict[str, str] = {
    "Namespace": "label",
    "Service": "dns1035",
    "Pod": "subdomain",
    "Deployment": "subdomain",
    "EndpointSlice": "subdomain",
    "NetworkPolicy": "subdomain",
    "ClusterNetworkPolicy": "subdomain",
    "Node": "subdomain",
    "IPPool": "subdomain",
    "BGPConfiguration": "subdomain",
    "BGPPeer": "subdomain",
}
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


def validate_manifests(manifests: Iterable[Manifest]) -> None:
    """Raise InvalidObjects listing every problem of every object; return when all are valid."""
    lines: list[str] = []
    for m in manifests:
        for e in validate_object(m.obj):
            lines.append(f"{m.origin} {label_of(m.obj)}: {e}")
    if lines:
        raise InvalidObjects(lines)


def label_of(obj: Resource) -> str:
    name = obj.metadata.get("name") if isinstance(obj.raw.get("metadata"), Mapping) else None
    ns = obj.namespace if isinstance(obj.raw.get("metadata"), Mapping) else ""
    return object_label(obj.kind, ns if isinstance(ns, str) else "",
                        name if isinstance(name, str) else "")


def validate_object(obj: Resource) -> list[FieldError]:
    errs: Errs = []
    raw = obj.raw
    too_big = object_size_error(raw)
    if too_big is not None:
        return [too_big]  # and walk no further into it
    kind = check_str(raw.get("kind"), "kind", errs, required=True)
    api = check_str(raw.get("apiVersion"), "apiVersion", errs, required=True)
    if kind is None or api is None:
        return errs
    if kind in INTERNAL_KINDS:
        errs.append(FieldError("kind", f"{kind} is podnet's internal state and cannot be applied"))
        return errs
    if kind not in KINDS:
        errs.append(FieldError("kind", f"unknown kind {show(kind)} (podnet serves "
                                       f"{', '.join(sorted(set(KINDS) - INTERNAL_KINDS))})"))
        return errs
    wanted = KINDS[kind][0]
    if api != wanted and api not in ALT_API_VERSIONS.get(kind, ()):
        errs.append(FieldError("apiVersion", f"{show(api)} does not serve kind {kind} (use {wanted})"))
        return errs
    _metadata(raw.get("metadata"), kind, errs)
    _staged(raw.get("metadata"), kind, errs)
    if kind == "Pod":
        _ip_addrs(raw.get("metadata"), "metadata", errs)
    if kind == "EndpointSlice":
        net.endpoint_slice(raw, errs)  # EndpointSlice keeps its fields at the top level
    else:
        spec_fn = SPEC_VALIDATORS.get(kind)
        if spec_fn is not None:
            spec_fn(raw.get("spec"), "spec", errs)
    return errs


def _staged(md: Any, kind: str, errs: Errs) -> None:
    ann = (md.get("annotations") if isinstance(md, Mapping) else None) or {}
    if not isinstance(ann, Mapping) or STAGED_ANNOTATION not in ann:
        return
    path = f"metadata.annotations[{STAGED_ANNOTATION}]"
    if kind not in ("NetworkPolicy", "ClusterNetworkPolicy"):
        errs.append(FieldError(path, f"only a NetworkPolicy or ClusterNetworkPolicy can be staged, not a {kind}"))
    elif ann[STAGED_ANNOTATION] not in ("true", "false"):
        errs.append(FieldError(path, f'{show(ann[STAGED_ANNOTATION])} is not "true" or "false"'))


def _metadata(v: Any, kind: str, errs: Errs) -> None:
    md = check_map(v, "metadata", errs, required=True)
    if not md and v is not None and not isinstance(v, Mapping):
        return
    name = md.get("name")
    if name is None and md.get("generateName"):
        errs.append(FieldError("metadata.generateName", "is not supported; set metadata.name"))
    else:
        check_name(name, "metadata.name", errs, NAME_RULES.get(kind, "subdomain"), required=True)
    if is_namespaced(kind):
        check_name(md.get("namespace"), "metadata.namespace", errs, "label")
    check_labels(md.get("labels"), "metadata.labels", errs)
    check_object_meta(dict(md), errs)


# ---- Namespace, Node --------------------------------------------------------------------
def _namespace_spec(v: Any, path: str, errs: Errs) -> None:
    check_map(v, path, errs)


def _node_spec(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs)
    check_cidr(spec.get("podCIDR"), at(path, "podCIDR"), errs)
    for i, c in enumerate(check_list(spec.get("podCIDRs"), at(path, "podCIDRs"), errs)):
        check_cidr(c, at(at(path, "podCIDRs"), i), errs)
    bgp = check_map(spec.get("bgp"), at(path, "bgp"), errs)  # Calico's: the node's own AS, reflector id
    check_int(bgp.get("asNumber"), at(at(path, "bgp"), "asNumber"), errs, 1, validate_bgp.MAX_ASN)


# ---- Pod, Deployment --------------------------------------------------------------------
def pod_spec(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not spec:
        if isinstance(v, Mapping):
            errs.append(FieldError(at(path, "containers"), "is required"))
        return
    cpath = at(path, "containers")
    names: set[str] = set()
    port_names: set[str] = set()
    for i, c in enumerate(check_list(spec.get("containers"), cpath, errs, required=True)):
        p = at(cpath, i)
        c = check_map(c, p, errs, required=True)
        name = check_name(c.get("name"), at(p, "name"), errs, "label", required=True)
        if name in names:
            errs.append(FieldError(at(p, "name"), f"{show(name)} is used by another container"))
        names.add(name or "")
        check_str(c.get("image"), at(p, "image"), errs, required=True)
        check_list(c.get("command"), at(p, "command"), errs)
        check_list(c.get("args"), at(p, "args"), errs)
        for j, port in enumerate(check_list(c.get("ports"), at(p, "ports"), errs)):
            pp = at(at(p, "ports"), j)
            port = check_map(port, pp, errs, required=True)
            check_int(port.get("containerPort"), at(pp, "containerPort"), errs, 1, 65535, required=True)
            check_int(port.get("hostPort"), at(pp, "hostPort"), errs, 1, 65535)
            check_protocol(port.get("protocol"), at(pp, "protocol"), errs)
            pname = check_port_name(port.get("name"), at(pp, "name"), errs)
            if pname:
                if pname in port_names:
                    errs.append(FieldError(at(pp, "name"), f"{show(pname)} is used by another port of this pod"))
                port_names.add(pname)
    check_name(spec.get("nodeName"), at(path, "nodeName"), errs, "subdomain")
    check_bool(spec.get("hostNetwork"), at(path, "hostNetwork"), errs)
    check_name(spec.get("hostname"), at(path, "hostname"), errs, "label")
    check_name(spec.get("subdomain"), at(path, "subdomain"), errs, "label")
    policy = check_enum(spec.get("dnsPolicy"), at(path, "dnsPolicy"), errs, DNS_POLICIES)
    _dns_config(spec.get("dnsConfig"), at(path, "dnsConfig"), errs, policy == "None")


def _dns_config(v: Any, path: str, errs: Errs, policy_none: bool) -> None:
    cfg = check_map(v, path, errs)
    servers = check_list(cfg.get("nameservers"), at(path, "nameservers"), errs)
    if policy_none and not servers:
        errs.append(FieldError(at(path, "nameservers"),
                               "must list at least one nameserver when dnsPolicy is None"))
    if len(servers) > 3:
        errs.append(FieldError(at(path, "nameservers"), f"has {len(servers)} entries, at most 3 are allowed"))
    for i, s in enumerate(servers):
        check_ip(s, at(at(path, "nameservers"), i), errs)
    searches = check_list(cfg.get("searches"), at(path, "searches"), errs)
    if len(searches) > 32:
        errs.append(FieldError(at(path, "searches"), f"has {len(searches)} entries, at most 32 are allowed"))
    for i, s in enumerate(searches):
        s = check_str(s, at(at(path, "searches"), i), errs, required=True)
        if s is not None:
            check_name(s.rstrip("."), at(at(path, "searches"), i), errs, "subdomain")
    for i, o in enumerate(check_list(cfg.get("options"), at(path, "options"), errs)):
        o = check_map(o, at(at(path, "options"), i), errs, required=True)
        check_str(o.get("name"), at(at(at(path, "options"), i), "name"), errs, required=True)
        check_str(o.get("value"), at(at(at(path, "options"), i), "value"), errs)


def _pod(v: Any, path: str, errs: Errs) -> None:
    pod_spec(v, path, errs)


def _ip_addrs(md: Any, path: str, errs: Errs) -> int:
    """A pod's ipAddrs annotation (podnet's or Calico's); how many addresses it fixes."""
    ann = md.get("annotations") if isinstance(md, Mapping) else None
    if not isinstance(ann, Mapping):
        return 0
    try:
        got = requested_ips(ann)
    except ValueError as e:
        key, _, why = str(e).partition(": ")
        errs.append(FieldError(f"{path}.annotations[{key}]", why))
        return 0
    return len(got[1]) if got else 0


def _deployment(v: Any, path: str, errs: Errs) -> None:
    spec = check_map(v, path, errs, required=True)
    if not spec:
        return
    check_int(spec.get("replicas"), at(path, "replicas"), errs, 0)
    sel_path = at(path, "selector")
    sel = spec.get("selector")
    sel_ok = False
    if sel is None:
        errs.append(FieldError(sel_path, "is required"))
    else:
        n = len(errs)
        check_selector(sel, sel_path, errs)
        sel_ok = len(errs) == n
    tpath = at(path, "template")
    tmpl = check_map(spec.get("template"), tpath, errs, required=True)
    if not tmpl:
        return
    tmd = check_map(tmpl.get("metadata"), at(tpath, "metadata"), errs)
    n = len(errs)
    labels = check_labels(tmd.get("labels"), at(tpath, "metadata.labels"), errs)
    if sel_ok and len(errs) == n:
        selector = LabelSelector.from_dict(sel)
        if selector.is_everything:
            errs.append(FieldError(sel_path, "must not be empty (it would select every pod)"))
        elif not selector.matches(labels):
            errs.append(FieldError(at(tpath, "metadata.labels"),
                                   f"{show(labels)} do not match spec.selector ({selector})"))
    pod_spec(tmpl.get("spec"), at(tpath, "spec"), errs)
    replicas = spec.get("replicas", 1)
    if _ip_addrs(tmd, at(tpath, "metadata"), errs) and isinstance(replicas, int) and replicas > 1:
        errs.append(FieldError(at(path, "replicas"), f"{replicas} replicas of a template with fixed "
                               f"addresses (ipAddrs annotation): only one pod can hold an address"))


SPEC_VALIDATORS: dict[str, Callable[[Any, str, Errs], None]] = {
    "Namespace": _namespace_spec,
    "Node": _node_spec,
    "Pod": _pod,
    "Deployment": _deployment,
    "Service": validate_service.service,
    "NetworkPolicy": net.network_policy,
    "ClusterNetworkPolicy": validate_cluster_policy.cluster_network_policy,
    "IPPool": net.ip_pool,
    "BGPConfiguration": validate_bgp.bgp_configuration,
    "BGPPeer": validate_bgp.bgp_peer,
}
