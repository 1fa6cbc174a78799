"""The cluster zone as data: every DNS record the Kubernetes DNS schema gives a snapshot. Pure.

Input: a `ClusterState` (Services, EndpointSlices, Pods, Namespaces). Output: a `Zone`,
a dict from lower-case owner name (no trailing dot) to its RRsets, plus what the lookup
needs to decide NXDOMAIN vs NODATA and to answer pod names, which are computed on demand.
Follows kubernetes/dns `docs/specification.md` (schema 1.1.0) and CoreDNS's
`plugin/kubernetes` where the spec leaves a choice open. No I/O; imports api and calc.model.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

from podnet.api.objects import Endpoint, EndpointSlice, Pod, Service
from podnet.calc.model import ClusterState

# RR types we produce (numbers as in RFC 1035 / 3596 / 2782)
A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV = 1, 2, 5, 6, 12, 16, 28, 33
SCHEMA_VERSION = "1.1.0"
VERSION_TTL = 28800  # what CoreDNS serves dns-version with
POD_MODES = ("insecure", "verified", "disabled")
REVERSE_V4, REVERSE_V6 = "in-addr.arpa", "ip6.arpa"


@dataclass(frozen=True)
class RR:
    """One resource record. `data` by type: A/AAAA an address string; CNAME/PTR/NS a name;
    TXT a string; SRV (priority, weight, port, target); SOA (mname, rname, serial, refresh,
    retry, expire, minimum). Names are lower case without the trailing dot."""
    name: str
    rtype: int
    ttl: int
    data: Any


@dataclass
class Zone:
    origin: str = "cluster.local"
    ttl: int = 30
    serial: int = 1
    pods_mode: str = "insecure"
    # Every name that exists, each with its RRsets by type (an empty dict: exists, no data).
    rrsets: dict[str, dict[int, list[RR]]] = field(default_factory=dict)
    # Extra records for the Additional section, by owner name (SRV targets' addresses).
    additional: dict[str, list[RR]] = field(default_factory=dict)
    namespaces: frozenset[str] = frozenset()
    pod_ips: dict[str, frozenset[str]] = field(default_factory=dict)  # for pods verified

    def add(self, rr: RR) -> None:
        rrs = self.rrsets.setdefault(rr.name, {}).setdefault(rr.rtype, [])
        if rr not in rrs:
            rrs.append(rr)

    def touch(self, name: str) -> None:
        self.rrsets.setdefault(name, {})

    def soa(self, owner: str | None = None) -> RR:
        """The SOA of negative answers: TTL min(ttl, 300), minimum = ttl (CoreDNS)."""
        o = owner or self.origin
        return RR(o, SOA, min(self.ttl, 300),
                  (f"ns.dns.{self.origin}", f"hostmaster.{self.origin}", self.serial,
                   7200, 1800, 86400, self.ttl))


def reverse_name(ip: str) -> str:
    """10.1.2.3 -> 3.2.1.10.in-addr.arpa; IPv6 as 32 reversed nibbles under ip6.arpa."""
    return ipaddress.ip_address(ip).reverse_pointer.lower()


def dashed(ip: str) -> str:
    """The IP-with-dashes id CoreDNS gives an endpoint without hostname (`:` -> `-`)."""
    return ip.replace(".", "-").replace(":", "-")


def _family_type(ip: str) -> int | None:
    try:
        return A if ipaddress.ip_address(ip).version == 4 else AAAA
    except ValueError:
        return None


def _addr_rr(name: str, ip: str, ttl: int) -> RR | None:
    t = _family_type(ip)
    return RR(name, t, ttl, str(ipaddress.ip_address(ip))) if t else None


def _dns_label(s: str) -> str:
    s = s.lower()
    return s if s and len(s) <= 63 and "." not in s else ""


def namespaces_of(state: ClusterState) -> frozenset[str]:
    """A namespace exists when it has a Namespace object or anything lives in it (the lab
    does not require Namespace objects for `default` and `kube-system`)."""
    names = {ns.name for ns in state.namespaces}
    for kind in ("Service", "Pod", "EndpointSlice"):
        names.update(o.namespace for o in state.of_kind(kind))
    return frozenset(n.lower() for n in names if n)


def _slices_by_service(state: ClusterState) -> dict[tuple[str, str], list[EndpointSlice]]:
    out: dict[tuple[str, str], list[EndpointSlice]] = {}
    for sl in state.endpoint_slices:
        if sl.service_name:
            out.setdefault((sl.namespace, sl.service_name), []).append(sl)
    return out


def _endpoint_hostname(ep: Endpoint, ip: str, svc: Service, state: ClusterState) -> str:
    """The endpoint's `hostname`; else the pod's own hostname when its subdomain names this
    Service (what the endpoints controller would have copied); else the dashed IP."""
    if ep.hostname and _dns_label(ep.hostname):
        return _dns_label(ep.hostname)
    if ep.target_ref and ep.target_ref[0] == "Pod":
        pod = state.get("Pod", ep.target_ref[1] or svc.namespace, ep.target_ref[2])
        if isinstance(pod, Pod) and pod.hostname and pod.subdomain == svc.name:
            h = _dns_label(pod.hostname)
            if h:
                return h
    return dashed(ip)


def _srv_weight(n: int) -> int:
    return max(1, 100 // max(n, 1))


def _add_cluster_ip_service(zone: Zone, svc: Service, base: str) -> None:
    ttl = zone.ttl
    zone.touch(base)
    addr_rrs = [rr for ip in svc.cluster_ips if (rr := _addr_rr(base, ip, ttl))]
    for rr in addr_rrs:
        zone.add(rr)
        zone.add(RR(reverse_name(rr.data), PTR, ttl, base))
    for p in svc.ports:
        name = _dns_label(p.name)
        if not name:
            continue
        owner = f"_{name}._{p.protocol.lower()}.{base}"
        zone.add(RR(owner, SRV, ttl, (0, 100, p.port, base)))
        zone.additional.setdefault(owner, []).extend(addr_rrs)


def _add_headless_service(zone: Zone, svc: Service, base: str,
                          slices: list[EndpointSlice], state: ClusterState) -> None:
    ttl = zone.ttl
    targets: list[tuple[str, list[RR]]] = []  # (endpoint name, its address RRs)
    named_ports: set[tuple[str, str, int]] = set()
    per_target_ports: dict[str, set[tuple[str, str, int]]] = {}
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        ports = {(_dns_label(p.name), p.protocol.lower(), p.port) for p in sl.ports if _dns_label(p.name)}
        for ep in sl.endpoints:
            if not (ep.ready or svc.publish_not_ready):
                continue
            for ip in ep.addresses:
                host = _endpoint_hostname(ep, ip, svc, state)
                name = f"{host}.{base}"
                rr = _addr_rr(name, ip, ttl)
                if rr is None:
                    continue
                zone.add(RR(base, rr.rtype, ttl, rr.data))
                zone.add(rr)
                zone.add(RR(reverse_name(rr.data), PTR, ttl, name))
                targets.append((name, [rr]))
                per_target_ports.setdefault(name, set()).update(ports)
                named_ports.update(ports)
    if not targets:
        return  # no ready endpoint: the name does not exist (NXDOMAIN), per the spec
    by_owner: dict[str, list[tuple[int, str]]] = {}
    for name, ports in sorted(per_target_ports.items()):
        for pname, proto, port in sorted(ports):
            by_owner.setdefault(f"_{pname}._{proto}.{base}", []).append((port, name))
    for owner, pairs in by_owner.items():
        w = _srv_weight(len(pairs))
        for port, target in pairs:
            zone.add(RR(owner, SRV, ttl, (0, w, port, target)))
            for tname, rrs in targets:
                if tname == target:
                    extra = zone.additional.setdefault(owner, [])
                    extra.extend(r for r in rrs if r not in extra)


def _add_service(zone: Zone, svc: Service, slices: list[EndpointSlice], state: ClusterState) -> None:
    ns, name = _dns_label(svc.namespace), _dns_label(svc.name)
    if not ns or not name:
        return
    base = f"{name}.{ns}.svc.{zone.origin}"
    if svc.type == "ExternalName":
        target = svc.external_name.strip().rstrip(".").lower()
        if target:
            zone.add(RR(base, CNAME, zone.ttl, target))
        return
    if svc.headless:
        _add_headless_service(zone, svc, base, slices, state)
    else:
        _add_cluster_ip_service(zone, svc, base)


def build_zone(state: ClusterState, origin: str = "cluster.local", ttl: int = 30,
               pods_mode: str = "insecure", serial: int = 1) -> Zone:
    """Every record of the cluster zone and the reverse names for a snapshot."""
    if pods_mode not in POD_MODES:
        raise ValueError(f"pods mode {pods_mode!r}: must be one of {', '.join(POD_MODES)}")
    origin = origin.strip(".").lower()
    namespaces = namespaces_of(state)
    zone = Zone(origin=origin, ttl=ttl, serial=serial, pods_mode=pods_mode, namespaces=namespaces)
    zone.add(RR(origin, SOA, min(ttl, 300), zone.soa().data))
    zone.add(RR(origin, NS, ttl, f"ns.dns.{origin}"))
    zone.add(RR(f"dns-version.{origin}", TXT, VERSION_TTL, SCHEMA_VERSION))
    for sub in ("svc", "pod"):
        zone.touch(f"{sub}.{origin}")
        for ns in namespaces:
            zone.touch(f"{ns}.{sub}.{origin}")
    slices = _slices_by_service(state)
    for svc in sorted(state.services, key=lambda s: (s.namespace, s.name)):
        _add_service(zone, svc, slices.get((svc.namespace, svc.name), []), state)
    if pods_mode == "verified":
        zone.pod_ips = _pod_ips(state.pods)
    return zone


def _pod_ips(pods: Iterable[Pod]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for p in pods:
        for ip in p.pod_ips:
            try:
                out.setdefault(p.namespace.lower(), set()).add(str(ipaddress.ip_address(ip)))
            except ValueError:
                continue
    return {k: frozenset(v) for k, v in out.items()}
