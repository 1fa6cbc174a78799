"""Service admission: ClusterIPs from the service CIDRs and NodePorts from 30000-32767,
with Kubernetes' rules, allocated by compare-and-swap in the datastore.

Every allocation is an object of an internal cluster-scoped kind written with `create()`:
`ServiceIPAllocation` named by the address, `NodePortAllocation` named `<proto>-<port>`.
`create` fails with AlreadyExists when another writer got there first, so two concurrent
appliers can never hold the same IP or port; the loser picks another (or, when the value
was requested, is refused naming the field and the owner).

Which families the cluster has is a cluster setting. podnet reads it from the IP pools:
the service CIDRs are `api.defaults.SERVICE_CIDR_V4` and `SERVICE_CIDR_V6`, IPv4 is served
when an IPv4 pool exists (or no pool at all), IPv6 when an IPv6 pool exists; the primary
family is IPv4 unless the cluster is IPv6-only. Callers may pass `ServiceCIDRs` instead.
"""
from __future__ import annotations

import copy
import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from podnet.api.defaults import NODE_PORT_RANGE, SERVICE_CIDR_V4, SERVICE_CIDR_V6
from podnet.api.objects import IPPool, Resource, Service, from_dict
from podnet.datastore.interface import AlreadyExists, Datastore, DatastoreError, NotFound

IP_KIND, PORT_KIND = "ServiceIPAllocation", "NodePortAllocation"
OWNER_NS, OWNER_NAME = "podnet.io/service-namespace", "podnet.io/service-name"
FAMILY = {4: "IPv4", 6: "IPv6"}
VERSION = {"IPv4": 4, "IPv6": 6}
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
ATTEMPTS = 64


class ServiceAdmissionError(ValueError):
    """A refusal, one line naming the field."""


@dataclass(frozen=True)
class ServiceCIDRs:
    cidrs: dict[str, str]  # family -> CIDR, primary first
    node_ports: tuple[int, int] = NODE_PORT_RANGE

    @property
    def families(self) -> list[str]:
        return list(self.cidrs)


def cluster_service_cidrs(store: Datastore) -> ServiceCIDRs:
    versions = set()
    for p in store.list("IPPool").items:
        if isinstance(p, IPPool) and p.for_workloads:
            try:
                versions.add(p.family)
            except ValueError:
                continue
    if versions == {6}:
        return ServiceCIDRs({"IPv6": SERVICE_CIDR_V6})
    if 6 in versions:
        return ServiceCIDRs({"IPv4": SERVICE_CIDR_V4, "IPv6": SERVICE_CIDR_V6})
    return ServiceCIDRs({"IPv4": SERVICE_CIDR_V4})


# ---- families --------------------------------------------------------------------------
def _families(spec: dict[str, Any], cfg: ServiceCIDRs, ips: list[str]) -> list[str]:
    """spec.ipFamilies after Kubernetes defaulting; sets spec.ipFamilyPolicy."""
    policy = spec.get("ipFamilyPolicy") or "SingleStack"
    if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        raise ServiceAdmissionError(f"spec.ipFamilyPolicy: unsupported value {policy!r} (SingleStack, "
                                    "PreferDualStack, RequireDualStack)")
    fams = [str(f) for f in spec.get("ipFamilies") or []]
    for i, f in enumerate(fams):
        if f not in VERSION:
            raise ServiceAdmissionError(f"spec.ipFamilies[{i}]: unsupported value {f!r} (IPv4, IPv6)")
        if f not in cfg.cidrs:
            raise ServiceAdmissionError(f"spec.ipFamilies[{i}]: {f} is not configured on this cluster "
                                        f"(service CIDRs: {', '.join(cfg.cidrs.values())})")
    if len(set(fams)) != len(fams) or len(fams) > 2:
        raise ServiceAdmissionError(f"spec.ipFamilies: {fams} must be one or two different families")
    for i, ip in enumerate(ips):
        fam = FAMILY[_version(ip, f"spec.clusterIPs[{i}]")]
        if i < len(fams) and fams[i] != fam:
            raise ServiceAdmissionError(f"spec.clusterIPs[{i}]: {ip} is {fam} but spec.ipFamilies[{i}] is {fams[i]}")
        if i >= len(fams):
            fams.append(fam)
    if len(fams) > 1 and policy == "SingleStack":
        raise ServiceAdmissionError("spec.ipFamilyPolicy: SingleStack allows one family; use "
                                    "PreferDualStack or RequireDualStack for two")
    if policy == "RequireDualStack" and len(cfg.cidrs) < 2:
        raise ServiceAdmissionError("spec.ipFamilyPolicy: RequireDualStack needs a dual-stack cluster "
                                    f"(service CIDRs: {', '.join(cfg.cidrs.values())})")
    if not fams:
        fams = [cfg.families[0]]
    if policy != "SingleStack" and len(fams) == 1 and len(cfg.cidrs) == 2:
        fams.append(next(f for f in cfg.families if f != fams[0]))
    spec["ipFamilyPolicy"] = policy
    return fams


def _version(ip: str, field: str) -> int:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        raise ServiceAdmissionError(f"{field}: {ip!r} is not an IP address") from None


# ---- allocation objects ----------------------------------------------------------------
def _owner(svc: Resource) -> str:
    return f"{svc.namespace}/{svc.name}"


def _alloc(kind: str, name: str, svc: Resource, spec: dict[str, Any]) -> Resource:
    return from_dict({"apiVersion": "podnet.io/v1", "kind": kind,
                      "metadata": {"name": name, "labels": {OWNER_NS: svc.namespace, OWNER_NAME: svc.name}},
                      "spec": {"service": _owner(svc), **spec}})


def _claim(store: Datastore, kind: str, name: str, svc: Resource, spec: dict[str, Any]) -> str | None:
    """Create the allocation; None when it is ours now, else the current owner."""
    try:
        store.create(_alloc(kind, name, svc, spec))
        return None
    except AlreadyExists:
        try:
            owner = str(store.get(kind, "", name).spec.get("service", "?"))
        except NotFound:  # released in between: try once more
            return _claim(store, kind, name, svc, spec)
        return None if owner == _owner(svc) else owner


def _free(store: Datastore, kind: str, name: str, svc: Resource) -> None:
    try:
        cur = store.get(kind, "", name)
        if cur.spec.get("service") == _owner(svc):
            store.delete(kind, "", name, revision=cur.resource_version)
    except DatastoreError:  # gone already, or changed under us: not ours to free
        pass


def _pick_ip(store: Datastore, cidr: str, svc: Resource, fam: str) -> str:
    net = ipaddress.ip_network(cidr)
    size = net.num_addresses
    first, last = 1, size - (2 if net.version == 4 else 1)
    # Kubernetes' static band: dynamic allocations prefer the upper range so requested
    # low addresses (10.96.0.10 for DNS) stay free
    band = min(max(16, size // 16), 256)
    taken = {o.name for o in store.list(IP_KIND).items}
    rng = random.SystemRandom()
    for lo, hi in ((first + band, last), (first, min(first + band - 1, last))):
        if lo > hi:
            continue
        for _ in range(ATTEMPTS):
            ip = str(net.network_address + rng.randint(lo, hi))
            if ip in taken:
                continue
            if _claim(store, IP_KIND, ip, svc, {"family": fam}) is None:
                return ip
            taken.add(ip)
    raise ServiceAdmissionError(f"spec.clusterIPs: no free address left in {cidr}")


def _ensure_ip(store: Datastore, ip: str, cidr: str, svc: Resource, fam: str, field: str) -> str:
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(cidr)
    if addr not in net or addr == net.network_address or (net.version == 4 and addr == net.broadcast_address):
        raise ServiceAdmissionError(f"{field}: {ip} is not in the service CIDR {cidr}")
    owner = _claim(store, IP_KIND, str(addr), svc, {"family": fam})
    if owner is not None:
        raise ServiceAdmissionError(f"{field}: {ip} is already allocated to {owner}")
    return str(addr)


# ---- admission -------------------------------------------------------------------------
def admit_service(store: Datastore, svc: Service, cfg: ServiceCIDRs | None = None) -> Service:
    """The Service to store, with clusterIP(s), ipFamilies, ipFamilyPolicy and nodePorts
    filled in (or kept, on update); raises ServiceAdmissionError naming the field."""
    cfg = cfg or cluster_service_cidrs(store)
    d = copy.deepcopy(svc.raw)
    spec = d.setdefault("spec", {})
    typ = spec.get("type") or "ClusterIP"
    if typ == "ExternalName":
        for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            spec.pop(f, None)
        for p in spec.get("ports") or []:
            p.pop("nodePort", None)
        return _released_if_update(store, svc, _as_service(d))
    ips = [str(x) for x in spec.get("clusterIPs") or []] or ([str(spec["clusterIP"])] if spec.get("clusterIP") else [])
    if spec.get("clusterIP") and ips and str(spec["clusterIP"]) != ips[0]:
        raise ServiceAdmissionError(f"spec.clusterIP: {spec['clusterIP']} must equal spec.clusterIPs[0] ({ips[0]})")
    headless = ips[:1] == ["None"]
    fams = _families(spec, cfg, [] if headless else ips)
    spec["ipFamilies"] = fams
    if headless:
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
    else:
        out = []
        for i, fam in enumerate(fams):
            if i < len(ips):
                out.append(_ensure_ip(store, ips[i], cfg.cidrs[fam], svc, fam, f"spec.clusterIPs[{i}]"))
            else:
                out.append(_pick_ip(store, cfg.cidrs[fam], svc, fam))
        spec["clusterIP"], spec["clusterIPs"] = out[0], out
    _node_ports(store, spec, typ, svc, cfg)
    _health_check_port(store, spec, typ, svc, cfg)
    return _released_if_update(store, svc, _as_service(d))


def _health_check_port(store: Datastore, spec: dict[str, Any], typ: str, svc: Service, cfg: ServiceCIDRs) -> None:
    """kube-apiserver's: a LoadBalancer with externalTrafficPolicy Local gets a
    healthCheckNodePort (TCP, from the node port range, shared with nodePorts); any other
    Service may not hold one, and loses the one it had when it stops needing it."""
    hc = spec.get("healthCheckNodePort")
    if not (typ == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"):
        live = _live(store, svc)
        if hc and live is not None and live.spec.get("healthCheckNodePort") == hc:
            spec.pop("healthCheckNodePort")  # no longer needed: given back (release_unused)
        elif hc:
            raise ServiceAdmissionError("spec.healthCheckNodePort: may only be set when type is LoadBalancer "
                                        "and externalTrafficPolicy is Local")
        return
    lo, hi = cfg.node_ports
    if not hc:
        spec["healthCheckNodePort"] = _pick_port(store, "tcp", svc, lo, hi)
        return
    try:
        port = int(hc)
    except (TypeError, ValueError):
        raise ServiceAdmissionError(f"spec.healthCheckNodePort: {hc!r} is not a number") from None
    if not lo <= port <= hi:
        raise ServiceAdmissionError(f"spec.healthCheckNodePort: {port} is not in the node port range {lo}-{hi}")
    owner = _claim(store, PORT_KIND, f"tcp-{port}", svc, {"protocol": "TCP", "port": port})
    if owner is not None:
        raise ServiceAdmissionError(f"spec.healthCheckNodePort: {port}/TCP is already allocated to {owner}")


def _released_if_update(store: Datastore, svc: Service, out: Service) -> Service:
    """An update of the stored object (same uid) gives back what the new spec dropped. A
    create that races another create of the same name must not touch the winner's."""
    live = _live(store, svc)
    if live is not None and svc.uid and svc.uid == live.uid:
        release_unused(store, out)
    return out


def _live(store: Datastore, svc: Resource) -> Resource | None:
    try:
        return store.get("Service", svc.namespace, svc.name)
    except NotFound:
        return None


def _node_ports(store: Datastore, spec: dict[str, Any], typ: str, svc: Service, cfg: ServiceCIDRs) -> None:
    lo, hi = cfg.node_ports
    ports = spec.get("ports") or []
    for i, p in enumerate(ports):
        proto = str(p.get("protocol") or "TCP").lower()
        np = p.get("nodePort")
        if typ not in NODE_PORT_TYPES:
            if np:
                raise ServiceAdmissionError(f"spec.ports[{i}].nodePort: may not be used when type is {typ!r}")
            continue
        if np:
            try:
                np = int(np)
            except (TypeError, ValueError):
                raise ServiceAdmissionError(f"spec.ports[{i}].nodePort: {np!r} is not a number") from None
            if not lo <= np <= hi:
                raise ServiceAdmissionError(f"spec.ports[{i}].nodePort: {np} is not in the node port range {lo}-{hi}")
            owner = _claim(store, PORT_KIND, f"{proto}-{np}", svc, {"protocol": proto.upper(), "port": np})
            if owner is not None:
                raise ServiceAdmissionError(f"spec.ports[{i}].nodePort: {np}/{proto.upper()} is already allocated to {owner}")
            continue
        if typ == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
            continue  # the load balancer reaches the pods directly (kube-apiserver allocates none)
        p["nodePort"] = _pick_port(store, proto, svc, lo, hi)


def _pick_port(store: Datastore, proto: str, svc: Service, lo: int, hi: int) -> int:
    taken = {o.name for o in store.list(PORT_KIND).items}
    free = [n for n in range(lo, hi + 1) if f"{proto}-{n}" not in taken]
    random.SystemRandom().shuffle(free)
    for n in free[:ATTEMPTS * 4]:
        if _claim(store, PORT_KIND, f"{proto}-{n}", svc, {"protocol": proto.upper(), "port": n}) is None:
            return n
    raise ServiceAdmissionError(f"spec.ports: no free node port left in {lo}-{hi} for {proto.upper()}")


def _as_service(d: dict[str, Any]) -> Service:
    obj = from_dict(d)
    assert isinstance(obj, Service)
    return obj


def held_by(store: Datastore, svc: Resource) -> list[Resource]:
    """Every allocation object the Service owns."""
    out = []
    for kind in (IP_KIND, PORT_KIND):
        out += [o for o in store.list(kind).items if o.spec.get("service") == _owner(svc)]
    return out


def release_service(store: Datastore, svc: Resource) -> None:
    """Give back what `svc` holds. After a delete: everything this Service owns. When a
    create lost a race (a live Service of that name exists): only what `svc` names and
    the live one does not."""
    if not isinstance(svc, Service):
        return
    live = _live(store, svc)
    if live is None:  # deleted: nothing of this name may hold anything any more
        for o in held_by(store, svc):
            _free(store, o.kind, o.name, svc)
        return
    named_by_live = {str(x) for x in (live.spec.get("clusterIPs") or [])}
    named_by_live |= {f"{str(p.get('protocol') or 'TCP').lower()}-{p.get('nodePort')}"
                      for p in live.spec.get("ports") or [] if p.get("nodePort")}
    if live.spec.get("healthCheckNodePort"):
        named_by_live.add(f"tcp-{live.spec['healthCheckNodePort']}")
    for ip in svc.cluster_ips:
        if ip in named_by_live:
            continue
        try:
            _free(store, IP_KIND, str(ipaddress.ip_address(ip)), svc)
        except ValueError:
            continue
    for p in svc.ports:
        name = f"{p.protocol.lower()}-{p.node_port}"
        if p.node_port and name not in named_by_live:
            _free(store, PORT_KIND, name, svc)


def release_unused(store: Datastore, svc: Service) -> None:
    """After an update: free allocations of this Service that its spec no longer names
    (a removed port, NodePort -> ClusterIP)."""
    keep = {str(ipaddress.ip_address(ip)) for ip in svc.cluster_ips}
    keep |= {f"{p.protocol.lower()}-{p.node_port}" for p in svc.ports if p.node_port}
    if svc.spec.get("healthCheckNodePort"):
        keep.add(f"tcp-{svc.spec['healthCheckNodePort']}")
    for o in held_by(store, svc):
        if o.spec.get("use") == "LoadBalancer":
            continue  # the load-balancer controller's (ipam/lbips.py), freed by it or on delete
        if o.name not in keep:
            _free(store, o.kind, o.name, svc)
