"""Which endpoints a connection to a Service may reach, and whether it is masqueraded,
by where the connection comes from. Pure; imports podnet.api and podnet.calc only.

kube-proxy's rules (pkg/proxy/nftables/proxier.go; "local traffic detection" by the
cluster's pod CIDRs, which are podnet's IP pools):
- to a ClusterIP: internalTrafficPolicy decides the endpoints; a source outside the pod
  CIDRs (the node itself, another node, the outside world) is masqueraded, so the
  endpoint's reply comes back through the node that translated it;
- to an external address (a node IP on the nodePort, an external IP on the service port)
  with externalTrafficPolicy Cluster: every endpoint, always masqueraded;
- with externalTrafficPolicy Local the policy applies only to traffic from outside the
  cluster: a pod's connection is short-circuited to every endpoint, unmasqueraded; the
  node's own is short-circuited too, masqueraded; anything else reaches only this node's
  endpoints and keeps its source address. Without a local endpoint every external
  connection is dropped.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, NamedTuple

from podnet.api.objects import IPPool
from podnet.calc.cidrs import collapse
from podnet.calc.services import EndpointAddr, ServicePortEntry

POD, NODE, OUTSIDE = "pod", "node", "outside"  # where a connection comes from


class Path(NamedTuple):
    endpoints: tuple[EndpointAddr, ...]  # empty while the Service has endpoints: dropped
    masquerade: bool
    why: str


def pod_cidrs_of(pools: Iterable[IPPool]) -> tuple[str, ...]:
    """Every pool's CIDR (disabled pools too: their pods may still run), collapsed so an
    nftables interval set takes them, IPv4 first."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for p in pools:
        if not p.for_workloads:
            continue  # load-balancer addresses are not pods
        try:
            nets.append(p.network)
        except ValueError:
            continue  # validation reports a bad CIDR; the proxy must not stop
    return collapse(nets, 4) + collapse(nets, 6)


def source_kind(src: str, pod_cidrs: Iterable[str], node_ips: Iterable[str]) -> str:
    """POD, NODE (one of the node's own addresses) or OUTSIDE."""
    a = ipaddress.ip_address(src)
    if any(a in ipaddress.ip_network(c) for c in pod_cidrs if ipaddress.ip_network(c).version == a.version):
        return POD
    return NODE if src in set(node_ips) else OUTSIDE


def internal_path(e: ServicePortEntry, source: str) -> Path:
    """A connection to the ClusterIP."""
    if e.internal_local:
        why = "internalTrafficPolicy Local: this node's endpoints only"
        eps = e.local_endpoints
    else:
        why, eps = "every endpoint", e.endpoints
    masq = source != POD
    return Path(eps, masq, why + ("; the source is outside the pod CIDRs: masqueraded" if masq else ""))


def external_path(e: ServicePortEntry, source: str) -> Path:
    """A connection to a node IP on the nodePort, or to an external IP on the port."""
    if not e.external_local:
        return Path(e.endpoints, True, "externalTrafficPolicy Cluster: every endpoint, masqueraded")
    if not e.local_endpoints:
        return Path((), False, "externalTrafficPolicy Local and no endpoint on this node: dropped")
    if source == POD:
        return Path(e.endpoints, False, "externalTrafficPolicy Local does not apply to a pod: "
                                        "every endpoint, the pod's address kept")
    if source == NODE:
        return Path(e.endpoints, True, "externalTrafficPolicy Local does not apply to the node "
                                       "itself: every endpoint, masqueraded")
    return Path(e.local_endpoints, False, "externalTrafficPolicy Local: this node's endpoints "
                                          "only, the client's address kept")
