"""The service table of one node: which virtual address . protocol . port goes to which
endpoints. Pure; imports podnet.api only.

Input: Services, their EndpointSlices, and the node's own IPs (for NodePorts). Output: one
`ServicePortEntry` per (service port, IP family), a frozen value the nftables renderer turns
into map elements and chains. kube-proxy's rules, followed here:
- a Service gets entries only when it has a ClusterIP of that family (headless and
  ExternalName Services are DNS-only);
- endpoints come from EndpointSlices labelled `kubernetes.io/service-name`, of the family's
  addressType, whose port has the Service port's name and protocol;
- ready endpoints are used; when none are ready, serving+terminating ones are (graceful
  termination fallback, KEP-1669); duplicates across slices count once;
- NodePort and LoadBalancer Services also listen on every node IP on spec.ports[].nodePort;
- `sessionAffinity: ClientIP` keeps its timeout (default 10800 s).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Mapping

from podnet.api.objects import EndpointSlice, Node, Service, ServicePort

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


@dataclass(frozen=True, order=True)
class EndpointAddr:
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePortEntry:
    """One service port in one IP family, as the node's proxy must implement it."""
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP | UDP | SCTP
    family: int  # 4 | 6
    vip: str
    port: int
    node_port: int  # 0: none
    endpoints: tuple[EndpointAddr, ...]  # sorted; empty: reject
    affinity_timeout: int  # 0: no session affinity

    @property
    def id(self) -> str:
        """Stable identity across changes: what a chain is named after."""
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port_name or self.port}"

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class ServiceTable:
    node_ips: tuple[str, ...]  # sorted; where NodePorts listen
    entries: Mapping[tuple[str, int], ServicePortEntry]  # (entry id, family) -> entry


def family_of(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def node_ips_of(node: Node | None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The node's InternalIP/ExternalIP addresses (plus `extra`), sorted, valid ones only."""
    ips: set[str] = set(extra)
    if node is not None:
        for a in node.status.get("addresses") or []:
            if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"):
                ips.add(str(a["address"]))
    return tuple(sorted(ip for ip in ips if _valid_ip(ip)))


def _valid_ip(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


def slices_by_service(slices: Iterable[EndpointSlice]) -> dict[tuple[str, str], list[EndpointSlice]]:
    out: dict[tuple[str, str], list[EndpointSlice]] = {}
    for s in slices:
        if s.service_name:
            out.setdefault((s.namespace, s.service_name), []).append(s)
    return out


def _endpoints_for(sp: ServicePort, family: int,
                   slices: Iterable[EndpointSlice]) -> tuple[EndpointAddr, ...]:
    want_type = "IPv4" if family == 4 else "IPv6"
    ready: set[EndpointAddr] = set()
    fallback: set[EndpointAddr] = set()
    for s in slices:
        if s.address_type != want_type:
            continue
        port = next((p.port for p in s.ports
                     if p.name == sp.name and p.protocol == sp.protocol), None)
        if not port:
            continue
        for ep in s.endpoints:
            for ip in ep.addresses:
                if not _valid_ip(ip) or family_of(ip) != family:
                    continue
                addr = EndpointAddr(str(ipaddress.ip_address(ip)), port)
                if ep.ready:
                    ready.add(addr)
                elif ep.serving and ep.terminating:
                    fallback.add(addr)
    return tuple(sorted(ready or fallback))


def entries_for_service(svc: Service, slices: Iterable[EndpointSlice]) -> list[ServicePortEntry]:
    """Every (port, family) entry of one Service. Bad fields make the Service (or the
    port) contribute nothing rather than raise: one bad object must not stop the proxy."""
    if svc.type == "ExternalName" or svc.headless:
        return []
    slices = list(slices)
    timeout = 0
    if svc.session_affinity == "ClientIP":
        try:
            timeout = max(1, svc.session_affinity_timeout)
        except (TypeError, ValueError):
            timeout = 10800
    try:
        ports = svc.ports
    except (TypeError, ValueError):
        return []
    out: list[ServicePortEntry] = []
    seen_families: set[int] = set()
    for vip in svc.cluster_ips:
        if not _valid_ip(vip):
            continue
        fam = family_of(vip)
        if fam in seen_families:  # one ClusterIP per family, as Kubernetes validates
            continue
        seen_families.add(fam)
        for sp in ports:
            if sp.protocol not in ("TCP", "UDP", "SCTP") or not 0 < sp.port < 65536:
                continue
            np = sp.node_port if svc.type in NODE_PORT_TYPES and 0 < sp.node_port < 65536 else 0
            out.append(ServicePortEntry(
                svc.namespace, svc.name, sp.name, sp.protocol, fam,
                str(ipaddress.ip_address(vip)), sp.port, np,
                _endpoints_for(sp, fam, slices), timeout))
    return out


def build_table(services: Iterable[Service], slices: Iterable[EndpointSlice],
                node_ips: Iterable[str]) -> ServiceTable:
    """The whole table (full sync)."""
    by_svc = slices_by_service(slices)
    entries: dict[tuple[str, int], ServicePortEntry] = {}
    for svc in services:
        try:
            found = entries_for_service(svc, by_svc.get((svc.namespace, svc.name), []))
        except (TypeError, ValueError, AttributeError):
            continue  # a malformed object contributes nothing; validation reports it
        for e in found:
            entries[(e.id, e.family)] = e
    return ServiceTable(tuple(sorted(node_ips)), entries)
