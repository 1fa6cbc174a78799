"""The cluster zone as data: every DNS record the Kubernetes DNS schema gives a snapshot. Pure.

Input: a `ClusterState` (Services, EndpointSlices, Pods, Namespaces). Output: a `Zone`,
a dict from lower-case owner name (no trailing dot) to its RRsets, plus what the lookup
needs to decide NXDOMAIN vs NODATA and to answer pod names, which are computed on demand.
Follows kubernetes/dns `docs/specification.md` (schema 1.1.0) and CoreDNS's
`plugin/kubernetes` where the spec leaves a choice open. No I/O; imports api and calc.model.
"""
from __future__ import annotations

import socket
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
DNS_SERVICE = ("kube-system", "kube-dns")  # (namespace, name) of the cluster DNS Service


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
    # The same RRset dicts keyed by the name's lower-case wire form (`wire_name`), so the
    # responder can look a question up without parsing it. The builder keeps it; None for
    # a zone put together by hand (the responder then always parses).
    wire: dict[bytes, dict[int, list[RR]]] | None = None
    pod_ips: dict[str, frozenset[str]] = field(default_factory=dict)  # for pods verified
    _seen: set[RR] = field(default_factory=set, repr=False)

    def add(self, rr: RR) -> None:
        if rr in self._seen:
            return
        self._seen.add(rr)
        self.rrsets.setdefault(rr.name, {}).setdefault(rr.rtype, []).append(rr)

    def touch(self, name: str) -> None:
        self.rrsets.setdefault(name, {})

    def soa(self, owner: str | None = None) -> RR:
        """The SOA of negative answers: TTL min(ttl, 300), minimum = ttl (CoreDNS)."""
        o = owner or self.origin
        return RR(o, SOA, min(self.ttl, 300),
                  (f"ns.dns.{self.origin}", f"hostmaster.{self.origin}", self.serial,
                   7200, 1800, 86400, self.ttl))


def wire_name(name: str) -> bytes | None:
    """`a.bc` -> b"\\x01a\\x02bc\\x00": the name as a question carries it, or None when no
    question can (a character past latin-1; the parser decodes labels as latin-1)."""
    try:
        raw = name.encode("latin-1")
    except UnicodeEncodeError:
        return None
    labels = raw.split(b".") if raw else []
    if any(not 0 < len(lb) <= 63 for lb in labels):
        return None
    return b"".join(bytes((len(lb),)) + lb for lb in labels) + b"\x00"


def canonical_ip(ip: str) -> tuple[int, str, bytes] | None:
    """(RR type A or AAAA, canonical text, packed) of an address, None if it is not one.
    inet_pton rather than ipaddress: a zone of 10k Services parses many addresses."""
    for family, rtype in ((socket.AF_INET, A), (socket.AF_INET6, AAAA)):
        try:
            packed = socket.inet_pton(family, ip)
        except (OSError, ValueError):
            continue
        return rtype, socket.inet_ntop(family, packed), packed
    return None


def reverse_name(ip: str) -> str:
    """10.1.2.3 -> 3.2.1.10.in-addr.arpa; IPv6 as 32 reversed nibbles under ip6.arpa."""
    c = canonical_ip(ip)
    if c is None:
        raise ValueError(f"not an IP address: {ip!r}")
    if c[0] == A:
        return ".".join(reversed(c[1].split("."))) + "." + REVERSE_V4
    return ".".join(reversed(c[2].hex())) + "." + REVERSE_V6


def dashed(ip: str) -> str:
    """The IP-with-dashes id CoreDNS gives an endpoint without hostname (`:` -> `-`)."""
    return ip.replace(".", "-").replace(":", "-")


def addr_rr(name: str, ip: str, ttl: int) -> RR | None:
    c = canonical_ip(ip)
    return RR(name, c[0], ttl, c[1]) if c else None


def valid_name(name: str) -> bool:
    """A name we can put on the wire: ASCII, labels of 1..63 bytes, at most 253 chars."""
    if not name or len(name) > 253 or not name.isascii():
        return False
    return all(0 < len(lb) <= 63 for lb in name.split("."))


def _dns_label(s: str) -> str:
    s = s.lower()
    return s if s and len(s) <= 63 and "." not in s else ""


def namespaces_of(state: ClusterState) -> frozenset[str]:
    """A namespace exists when it has a Namespace object or anything lives in it (the lab
    does not require Namespace objects for `default` and `kube-system`)."""
    names = {name for _ns, name in state.objects.get("Namespace", {})}
    for kind in ("Service", "Pod", "EndpointSlice"):
        names.update(ns for ns, _name in state.objects.get(kind, {}))  # keys: (namespace, name)
    return frozenset(n.lower() for n in names if n)


def slices_by_service(state: ClusterState) -> dict[tuple[str, str], list[EndpointSlice]]:
    out: dict[tuple[str, str], list[EndpointSlice]] = {}
    for sl in state.endpoint_slices:
        if sl.service_name:
            out.setdefault((sl.namespace, sl.service_name), []).append(sl)
    return out


def _endpoint_hostname(ep: Endpoint, ip: str, svc: Service, subdomain_pods: tuple[Pod, ...]) -> str:
    """The endpoint's `hostname`; else the pod's own hostname when its subdomain names this
    Service (what the endpoints controller would have copied); else the dashed IP."""
    if ep.hostname and _dns_label(ep.hostname):
        return _dns_label(ep.hostname)
    if ep.target_ref and ep.target_ref[0] == "Pod":
        for pod in subdomain_pods:
            if pod.name == ep.target_ref[2] and pod.hostname:
                h = _dns_label(pod.hostname)
                if h:
                    return h
    return dashed(ip)


def subdomain_pods(state: ClusterState) -> dict[tuple[str, str], tuple[Pod, ...]]:
    """Pods by (namespace, spec.subdomain): the only pods a Service's records depend on."""
    out: dict[tuple[str, str], list[Pod]] = {}
    for p in state.pods:
        if p.subdomain:
            out.setdefault((p.namespace, p.subdomain), []).append(p)
    return {k: tuple(v) for k, v in out.items()}


def _srv_weight(n: int) -> int:
    return max(1, 100 // max(n, 1))


def _add_cluster_ip_service(zone: Zone, svc: Service, base: str) -> None:
    ttl = zone.ttl
    zone.touch(base)
    addr_rrs = [rr for ip in svc.cluster_ips if (rr := addr_rr(base, ip, ttl))]
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
                          slices: list[EndpointSlice], pods: tuple[Pod, ...]) -> None:
    ttl = zone.ttl
    addr_of: dict[str, list[RR]] = {}  # endpoint name -> its address RRs
    per_target_ports: dict[str, set[tuple[str, str, int]]] = {}
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        ports = {(_dns_label(p.name), p.protocol.lower(), p.port) for p in sl.ports if _dns_label(p.name)}
        for ep in sl.endpoints:
            if not (ep.ready or svc.publish_not_ready):
                continue
            for ip in ep.addresses:
                host = _endpoint_hostname(ep, ip, svc, pods)
                name = f"{host}.{base}"
                rr = addr_rr(name, ip, ttl)
                if rr is None:
                    continue
                zone.add(RR(base, rr.rtype, ttl, rr.data))
                zone.add(rr)
                zone.add(RR(reverse_name(rr.data), PTR, ttl, name))
                addr_of.setdefault(name, []).append(rr)
                per_target_ports.setdefault(name, set()).update(ports)
    if not addr_of:
        return  # no ready endpoint: the name does not exist (NXDOMAIN), per the spec
    by_owner: dict[str, list[tuple[int, str]]] = {}
    for name, ports in sorted(per_target_ports.items()):
        for pname, proto, port in sorted(ports):
            by_owner.setdefault(f"_{pname}._{proto}.{base}", []).append((port, name))
    for owner, pairs in by_owner.items():
        w = _srv_weight(len(pairs))
        extra: dict[RR, None] = {}  # ordered set
        for port, target in pairs:
            zone.add(RR(owner, SRV, ttl, (0, w, port, target)))
            extra.update(dict.fromkeys(addr_of.get(target, ())))
        zone.additional.setdefault(owner, []).extend(extra)


def service_part(origin: str, ttl: int, svc: Service, slices: list[EndpointSlice],
                  pods: tuple[Pod, ...]) -> Zone:
    """The records one Service contributes, as a small zone of their own."""
    part = Zone(origin=origin, ttl=ttl)
    ns, name = _dns_label(svc.namespace), _dns_label(svc.name)
    if not ns or not name:
        return part
    base = f"{name}.{ns}.svc.{origin}"
    if svc.type == "ExternalName":
        target = svc.external_name.strip().rstrip(".").lower()
        if valid_name(target):
            part.add(RR(base, CNAME, ttl, target))
    elif svc.headless:
        _add_headless_service(part, svc, base, slices, pods)
    else:
        _add_cluster_ip_service(part, svc, base)
    return part


def pod_ips(pods: Iterable[Pod]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for p in pods:
        for ip in p.pod_ips:
            c = canonical_ip(ip)
            if c is not None:
                out.setdefault(p.namespace.lower(), set()).add(c[1])
    return {k: frozenset(v) for k, v in out.items()}
