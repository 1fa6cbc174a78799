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
  termination fallback, KEP-1669), decided separately for the whole cluster and for this
  node's endpoints (what a Local policy uses); duplicates across slices count once;
- of the ready endpoints, the Cluster set keeps those the EndpointSlice hints give this
  node or its zone (spec.trafficDistribution; the rules are calc/topology.py's);
- NodePort and LoadBalancer Services also listen on every node IP on spec.ports[].nodePort;
- spec.externalIPs of the family are "external" destinations like a node IP's nodePort
  (kube-proxy): traffic to one on a service port, arriving at or leaving from the node,
  is load-balanced with the externalTrafficPolicy rules (service_paths.external_path);
- a LoadBalancer Service's status.loadBalancer.ingress IPs are external destinations too,
  and with spec.loadBalancerSourceRanges only those sources get in (the rest is dropped);
- `sessionAffinity: ClientIP` keeps its timeout (default 10800 s);
- `internalTrafficPolicy: Local`: ClusterIP traffic goes only to this node's endpoints,
  `externalTrafficPolicy: Local`: NodePort traffic likewise and keeps its client's source
  address; a node without such endpoints drops the traffic (a Service without any
  endpoint still rejects).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple

from podnet.api.objects import EndpointSlice, Node, Service, ServicePort
from podnet.calc.topology import Hints, hints_of, prefer

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class EndpointAddr(NamedTuple):
    """A tuple, so sorting 100k of them compares in C. `local`: on this node (or the
    slice does not say), so it may be its own client (hairpin). `here`: the slice says
    this node, which is what a Local traffic policy may use (kube-proxy: an endpoint
    without nodeName is not local)."""
    ip: str
    port: int
    local: bool = True
    here: bool = True


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
    internal_local: bool = False  # internalTrafficPolicy: Local
    external_local: bool = False  # externalTrafficPolicy: Local (only with an external destination)
    local_endpoints: tuple[EndpointAddr, ...] = ()  # this node's: what a Local policy uses
    serving: tuple[str, ...] = ()  # addresses of every serving endpoint (ready or terminating)
    external_ips: tuple[str, ...] = ()  # spec.externalIPs of this family, sorted
    lb_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress IPs of this family, sorted
    source_ranges: tuple[str, ...] = ()  # loadBalancerSourceRanges of this family; () = any

    @property
    def externally_accessible(self) -> bool:
        """kube-proxy's ExternallyAccessible: a nodePort or an external address."""
        return bool(self.node_port or self.external_ips or self.lb_ips)

    @property
    def id(self) -> str:
        """Stable identity across changes: what a chain is named after."""
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port_name or self.port}"

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def internal_endpoints(self) -> tuple[EndpointAddr, ...]:
        """What traffic to the ClusterIP may reach; empty while `endpoints` is not: dropped."""
        return self.local_endpoints if self.internal_local else self.endpoints

    @property
    def external_endpoints(self) -> tuple[EndpointAddr, ...]:
        """What traffic to a node IP on the nodePort (or to an external IP) may reach from
        outside the cluster; empty while `endpoints` is not: dropped."""
        return self.local_endpoints if self.external_local else self.endpoints


@dataclass(frozen=True)
class ServiceTable:
    node_ips: tuple[str, ...]  # sorted; where NodePorts listen
    entries: Mapping[tuple[str, int], ServicePortEntry]  # (entry id, family) -> entry
    pod_cidrs: tuple[str, ...] = ()  # the IP pools: a source inside is a pod (service_paths)


def family_of(ip: str) -> int:
    n = _norm(ip)
    if n is None:
        raise ValueError(f"{ip!r} is not an IP address")
    return n[1]


def node_ips_of(node: Node | None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The node's InternalIP/ExternalIP addresses (plus `extra`), sorted, valid ones only."""
    ips: set[str] = set(extra)
    if node is not None:
        for a in node.status.get("addresses") or []:
            if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"):
                ips.add(str(a["address"]))
    return tuple(sorted(ip for ip in ips if _valid_ip(ip)))


def _valid_ip(ip: str) -> bool:
    return _norm(ip) is not None


def _norm(ip: str) -> tuple[str, int] | None:
    """(canonical text, family) of an address, None when it is not one. inet_pton/ntop:
    the table of a 10k-service cluster parses ~100k addresses, and ipaddress is ~20x slower."""
    af, fam = (socket.AF_INET6, 6) if ":" in ip else (socket.AF_INET, 4)
    try:
        return socket.inet_ntop(af, socket.inet_pton(af, ip)), fam
    except (OSError, ValueError, TypeError):
        return None


def slices_by_service(slices: Iterable[EndpointSlice]) -> dict[tuple[str, str], list[EndpointSlice]]:
    out: dict[tuple[str, str], list[EndpointSlice]] = {}
    for s in slices:
        if s.service_name:
            out.setdefault((s.namespace, s.service_name), []).append(s)
    return out


_NO_CONDITIONS: Mapping[str, object] = {}


class EndpointSets(NamedTuple):
    """One service port's endpoints in one family, as kube-proxy categorises them."""
    cluster: tuple[EndpointAddr, ...]  # ready anywhere (topology: the hinted ones), else serving-terminating anywhere
    local: tuple[EndpointAddr, ...]  # ready here, else serving-terminating here
    serving: tuple[str, ...]  # every serving address (conntrack keeps flows to these)


def _endpoints_for(sp: ServicePort, family: int, slices: Iterable[EndpointSlice],
                   node_name: str = "", zone: str = "") -> EndpointSets:
    want_type = "IPv4" if family == 4 else "IPv6"
    af, v6 = (socket.AF_INET6, True) if family == 6 else (socket.AF_INET, False)
    pton, ntop, new_addr = socket.inet_pton, socket.inet_ntop, tuple.__new__
    ready: set[EndpointAddr] = set()
    fallback: set[EndpointAddr] = set()
    hinted: dict[EndpointAddr, Hints] = {}
    unhinted = False  # some ready endpoint has no hints: topology is off (kube-proxy)
    for s in slices:
        if s.address_type != want_type:
            continue
        port = next((p.port for p in s.ports
                     if p.name == sp.name and p.protocol == sp.protocol), None)
        if not isinstance(port, int) or not 0 < port < 65536:
            continue  # a bad port must not make the node's whole transaction fail
        # the raw dicts, not EndpointSlice.endpoints: same defaults, without building
        # a dataclass per endpoint (100k of them at 10k services)
        # the hot loop of a full sync (10^5-10^6 endpoints): _norm and EndpointAddr's
        # constructor inlined, each field read once
        for ep in s.raw.get("endpoints") or ():
            cond = ep.get("conditions") or _NO_CONDITIONS
            ready_c = cond.get("ready")
            is_ready = True if ready_c is None else bool(ready_c)
            hints = None
            if is_ready:
                into = ready
                raw_hints = ep.get("hints")
                if raw_hints:
                    hints = hints_of(raw_hints)
                else:
                    unhinted = True
            else:
                serving_c = cond.get("serving")
                if not ((is_ready if serving_c is None else bool(serving_c)) and cond.get("terminating")):
                    continue
                into = fallback
            ep_node = ep.get("nodeName")
            here = not node_name or ep_node == node_name
            local = here or not ep_node
            for ip in ep.get("addresses") or ():
                ip = ip if type(ip) is str else str(ip)
                if (":" in ip) is not v6:  # another family (as _norm tells them apart)
                    continue
                try:
                    canon = ntop(af, pton(af, ip))
                except (OSError, ValueError, TypeError):
                    continue
                addr = new_addr(EndpointAddr, (canon, port, local, here))
                into.add(addr)
                if hints is not None:
                    hinted[addr] = hints
    # the fallback is decided separately for the Cluster and the Local set (kube-proxy's
    # CategorizeEndpoints): a ready endpoint elsewhere must not hide local terminating ones
    local = [ep for ep in ready if ep.here] or [ep for ep in fallback if ep.here]
    serving = {ep.ip for ep in ready} | {ep.ip for ep in fallback}
    cluster = prefer(hinted, node_name, zone) if ready and not unhinted else ready
    return EndpointSets(tuple(sorted(cluster or fallback)), tuple(sorted(local)), tuple(sorted(serving)))


def entries_for_service(svc: Service, slices: Iterable[EndpointSlice],
                        node_name: str = "", zone: str = "") -> list[ServicePortEntry]:
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
    internal_local = svc.internal_traffic_policy == "Local"
    external_local = svc.external_traffic_policy == "Local"
    out: list[ServicePortEntry] = []
    ext_ips: dict[int, set[str]] = {4: set(), 6: set()}
    lb_ips: dict[int, set[str]] = {4: set(), 6: set()}
    for raw in svc.external_ips:
        n = _norm(raw)
        if n is not None:
            ext_ips[n[1]].add(n[0])
    for raw in svc.load_balancer_ips:
        n = _norm(raw)
        if n is not None:
            lb_ips[n[1]].add(n[0])
    ranges = _source_ranges(svc.load_balancer_source_ranges)
    seen_families: set[int] = set()
    for raw_vip in svc.cluster_ips:
        n = _norm(raw_vip)
        if n is None:
            continue
        vip, fam = n
        if fam in seen_families:  # one ClusterIP per family, as Kubernetes validates
            continue
        seen_families.add(fam)
        for sp in ports:
            if sp.protocol not in ("TCP", "UDP", "SCTP") or not 0 < sp.port < 65536:
                continue
            np = sp.node_port if svc.type in NODE_PORT_TYPES and 0 < sp.node_port < 65536 else 0
            sets = _endpoints_for(sp, fam, slices, node_name, zone)
            ext = tuple(sorted(ext_ips[fam] - {vip}))
            lbs = tuple(sorted(lb_ips[fam] - {vip} - set(ext)))
            out.append(ServicePortEntry(
                svc.namespace, svc.name, sp.name, sp.protocol, fam,
                vip, sp.port, np, sets.cluster, timeout,
                internal_local, external_local and bool(np or ext or lbs), sets.local, sets.serving, ext,
                lbs, ranges[fam] if lbs else ()))
    return out


def _source_ranges(ranges: Iterable[str]) -> dict[int, tuple[str, ...]]:
    """loadBalancerSourceRanges by family, as networks. A family the user listed no range
    of gets an empty range that matches nothing: ranges given means only those get in."""
    out: dict[int, list[str]] = {4: [], 6: []}
    given = False
    for r in ranges:
        try:
            net = ipaddress.ip_network(r, strict=False)
        except ValueError:
            continue
        given = True
        out[net.version].append(str(net))
    if not given:
        return {4: (), 6: ()}
    return {f: tuple(sorted(set(v))) or (NO_SOURCE[f],) for f, v in out.items()}


NO_SOURCE = {4: "0.0.0.0/32", 6: "::/128"}  # a range no real client comes from


class StaleFlow(NamedTuple):
    """UDP conntrack entries to forget: flows DNATed to `endpoint` that came to `dst` (a
    service address: the ClusterIP or an external IP), or to `node_port` on any address."""
    family: int
    endpoint: str
    dst: str = ""
    node_port: int = 0


def stale_udp_flows(old: ServicePortEntry | None, new: ServicePortEntry | None) -> list[StaleFlow]:
    """kube-proxy's conntrack cleanup: UDP has no connection end, so a client that keeps its
    source port keeps its DNAT to an endpoint until the flow is deleted. Forget flows to
    endpoints that stopped serving (a terminating endpoint still serves: its flows stay),
    to the ClusterIP, the external IPs and the NodePort alike."""
    if old is None or old.protocol != "UDP":
        return []
    gone = sorted(set(old.serving) - set(new.serving if new is not None else ()))
    out = [StaleFlow(old.family, ep, dst=dst) for dst in (old.vip, *old.external_ips, *old.lb_ips)
           for ep in gone]
    if new is not None:
        # an address the Service no longer has (an external IP or ingress removed): its
        # flows to the endpoints that still serve go too (kube-proxy clears a deleted
        # service IP's UDP entries)
        dropped = sorted({old.vip, *old.external_ips, *old.lb_ips} - {new.vip, *new.external_ips, *new.lb_ips})
        out += [StaleFlow(old.family, ep, dst=dst) for dst in dropped for ep in sorted(set(old.serving) - set(gone))]
    if old.node_port:
        out += [StaleFlow(old.family, ep, node_port=old.node_port) for ep in gone]
    return out


def build_table(services: Iterable[Service], slices: Iterable[EndpointSlice],
                node_ips: Iterable[str], node_name: str = "",
                pod_cidrs: Iterable[str] = (), zone: str = "") -> ServiceTable:
    """The whole table (full sync). `zone`: the node's topology.kubernetes.io/zone."""
    by_svc = slices_by_service(slices)
    entries: dict[tuple[str, int], ServicePortEntry] = {}
    for svc in services:
        try:
            found = entries_for_service(svc, by_svc.get((svc.namespace, svc.name), []), node_name, zone)
        except (TypeError, ValueError, AttributeError):
            continue  # a malformed object contributes nothing; validation reports it
        for e in found:
            entries[(e.id, e.family)] = e
    return ServiceTable(tuple(sorted(node_ips)), entries, tuple(pod_cidrs))
