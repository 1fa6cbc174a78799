"""NAT outgoing, decided purely: which sources are masqueraded to which destinations.

Calico semantics: traffic from an IPPool with `natOutgoing: true` to a destination
outside every IP pool and outside the service CIDRs leaves with the node's address
(masquerade). Pools with `natOutgoing: false` keep the pod address. Disabled pools still
count (their pods may still exist). IPv4 and IPv6 alike. Imports api only.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.api.defaults import SERVICE_CIDR_V4, SERVICE_CIDR_V6
from podnet.calc.cidrs import Network, collapse
from podnet.calc.model import ClusterState



@dataclass(frozen=True)
class NatPlan:
    masquerade: dict[int, tuple[str, ...]]  # family -> source CIDRs (natOutgoing pools)
    cluster: dict[int, tuple[str, ...]]  # family -> every pool CIDR + the service CIDR

    def masquerades(self, src: str, dst: str) -> bool:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version != d.version:
            return False
        return _inside(s, self.masquerade[s.version]) and not _inside(d, self.cluster[d.version])


def _inside(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: tuple[str, ...]) -> bool:
    return any(addr in ipaddress.ip_network(n) for n in nets)




def nat_plan(state: ClusterState, service_cidrs: tuple[str, ...] = (SERVICE_CIDR_V4, SERVICE_CIDR_V6)) -> NatPlan:
    masq: list[Network] = []
    cluster: list[Network] = [ipaddress.ip_network(c, strict=False) for c in service_cidrs]
    for pool in sorted(state.ippools, key=lambda p: p.name):
        if not pool.for_workloads:
            continue  # load-balancer addresses: no pod sends from them
        try:
            net = pool.network
        except ValueError:
            continue  # invalid CIDR: validation reports it; never crash the agent
        cluster.append(net)
        if pool.nat_outgoing:
            masq.append(net)
    return NatPlan({f: collapse(masq, f) for f in (4, 6)}, {f: collapse(cluster, f) for f in (4, 6)})
