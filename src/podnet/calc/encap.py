"""When traffic between two nodes is encapsulated, and what it costs. Pure.

Calico's per-pool `vxlanMode`: Always (every node-to-node packet of the pool's pods is
wrapped in VXLAN), CrossSubnet (only when the two nodes are on different underlay
subnets: the same L2 segment can deliver a pod packet to its node directly, a router
between racks knows no pod block) and Never (routed: on the same segment directly, across
segments only if BGP taught the routers the blocks). A node's subnet is what its agent
found on the interface holding its address and published in its Node's status
(`status.podnet.ipv4Address: 198.18.0.11/24`, as Calico's `spec.bgp.ipv4Address`).

`Crossing` says, for one block and one peer node, how the packets go: ENCAP (VXLAN),
DIRECT (a route via the peer, on-link), BGP (left to BIRD) or UNROUTABLE (Never across
subnets without BGP: no route can work, the planner says so instead of installing one).
"""
from __future__ import annotations

import enum
import ipaddress
from typing import Iterable

from podnet.api.objects import IPPool

MODES = ("Always", "CrossSubnet", "Never")
# --encap (lab and agent) -> the vxlanMode of pools that do not say
DEFAULT_MODES = {"none": "Never", "vxlan": "Always", "crosssubnet": "CrossSubnet"}
# VXLAN's cost: outer IP + UDP (8) + VXLAN (8) + the inner Ethernet header (14)
VXLAN_OVERHEAD = {4: 20 + 8 + 8 + 14, 6: 40 + 8 + 8 + 14}
SUBNET_FIELDS = {4: "ipv4Address", 6: "ipv6Address"}  # in Node.status.podnet


class Crossing(enum.Enum):
    ENCAP = "encap"
    DIRECT = "direct"
    BGP = "bgp"
    UNROUTABLE = "unroutable"


def pool_mode(cidr: str, pools: Iterable[IPPool], default: str = "Never") -> str:
    """The vxlanMode of the pool holding `cidr` (the longest such pool), or `default`
    (no pool holds it, or the pool does not say)."""
    net = ipaddress.ip_network(cidr, strict=False)
    best: IPPool | None = None
    best_len = -1
    for p in pools:
        try:
            pn = p.network
        except ValueError:
            continue
        inside = pn.version == net.version and int(net.network_address) >> (pn.max_prefixlen - pn.prefixlen) \
            == int(pn.network_address) >> (pn.max_prefixlen - pn.prefixlen) and net.prefixlen >= pn.prefixlen
        if inside and pn.prefixlen > best_len:
            best, best_len = p, pn.prefixlen
    mode = str((best.spec.get("vxlanMode") if best is not None else None) or default)
    return mode if mode in MODES else default


def same_subnet(a: str | None, b: str | None) -> bool | None:
    """Whether two interface addresses (`198.18.0.11/24`) share a subnet; None when one
    is unknown (an agent that has not published it yet)."""
    if not a or not b:
        return None
    try:
        na, nb = ipaddress.ip_interface(a).network, ipaddress.ip_interface(b).network
    except ValueError:
        return None
    return na == nb


def crossing(mode: str, same: bool | None, routing: str = "static") -> Crossing:
    """How a pool's packet reaches a peer node. Unknown subnets count as different for
    CrossSubnet (encapsulating always works) and as the same for Never (as a one-segment
    lab before agents published them)."""
    if mode == "Always" or (mode == "CrossSubnet" and same is not True):
        return Crossing.ENCAP
    if mode == "CrossSubnet":
        return Crossing.DIRECT  # BIRD leaves encapsulating pools to the agent, both ways
    if routing == "bgp":
        return Crossing.BGP
    return Crossing.UNROUTABLE if same is False else Crossing.DIRECT


def encapsulated_pools(pools: Iterable[IPPool], default: str = "Never") -> list[str]:
    """The pools the agent routes itself (VXLAN may be needed): BIRD must not install
    routes into them, as Calico's BIRD leaves VXLAN pools to Felix."""
    return [p.cidr for p in pools if pool_mode(p.cidr, [p], default) != "Never"]


def pod_mtu(underlay_mtu: int, encap_possible: bool, underlay_family: int = 4) -> int:
    """The MTU a pod's interface gets: the underlay's, minus VXLAN's overhead when its
    packets may be encapsulated (the outer header's family is the underlay's)."""
    return underlay_mtu - (VXLAN_OVERHEAD[underlay_family] if encap_possible else 0)
