"""Routes from one node to the other nodes' pod blocks: direct or over VXLAN. Pure.

Input: Node objects (their InternalIPs, and the VXLAN MAC their agent published) and
IPAMBlock objects (cidr, `affinity: host:<node>`, allocations whose handle names the node
that took the address). Output: the routes, VXLAN FDB and neighbour entries this node
must have. Nothing here touches the kernel.

Whether a block's packets to its owner are encapsulated is its pool's `vxlanMode` and
whether the two nodes share a subnet (calc/encap.py; `encap` is the agent's --encap: the
mode of pools that do not say):
- direct: `<block> via <owner's underlay IP of the block's family>`; the nodes share
  one L2 segment, so the next hop is directly reachable.
- VXLAN: `<block> via <gateway> dev pnvx onlink`, where the gateway is the owner's
  underlay IPv4 (for IPv4 blocks) or a link-local address derived from the owner's VTEP MAC
  (for IPv6 blocks); a permanent neighbour entry maps the gateway to the owner's VTEP MAC
  and an FDB entry maps that MAC to the owner's underlay IPv4 (the VXLAN outer header).
- Never across subnets: no route works without BGP (the router knows no pod block); the
  plan lists it in `unroutable` instead. With `routing="bgp"` the Never pools are BIRD's.
- An address borrowed from another node's block (its handle names a different node) gets
  a /32 or /128 route to the borrower, which wins over the block route by prefix length.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Iterator

from podnet.api.objects import IPPool, Node, Resource
from podnet.calc.encap import DEFAULT_MODES, SUBNET_FIELDS, Crossing, crossing, pool_mode, same_subnet

VXLAN_DEV = "pnvx"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14): our VTEPs speak IPv4
MAC_STATUS_FIELD = "vxlanMAC"  # in Node.status.podnet


@dataclass(frozen=True, order=True)
class Route:
    dst: str  # a network in canonical form
    gateway: str
    dev: str  # "" = the kernel picks (direct routes); VXLAN_DEV for the overlay
    node: str  # the node that owns dst (for display and tracing)

    @property
    def family(self) -> int:
        return ipaddress.ip_network(self.dst).version


@dataclass(frozen=True, order=True)
class Neighbour:
    ip: str
    mac: str


@dataclass(frozen=True, order=True)
class Fdb:
    mac: str
    dst: str  # the owner's underlay IPv4


@dataclass(frozen=True)
class RoutePlan:
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[Fdb, ...] = ()
    unroutable: tuple[Route, ...] = ()  # Never across subnets, no BGP: (dst, owner) with no way


@dataclass(frozen=True)
class NodeAddrs:
    name: str
    ip4: str | None
    ip6: str | None
    mac: str
    subnet4: str | None = None  # the interface address with its prefix: 198.18.0.11/24
    subnet6: str | None = None

    def subnet(self, family: int) -> str | None:
        return self.subnet4 if family == 4 else self.subnet6


def vtep_mac(ip4: str) -> str:
    """A stable, locally administered unicast MAC for a node's VXLAN device, from its IPv4."""
    b = ipaddress.IPv4Address(ip4).packed
    return "0e:70:" + ":".join(f"{x:02x}" for x in b)


def link_local_of(mac: str) -> str:
    """The EUI-64 link-local address of a MAC (fe80::...)."""
    parts = [int(x, 16) for x in mac.split(":")]
    parts[0] ^= 0x02
    eui = parts[:3] + [0xFF, 0xFE] + parts[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + bytes(eui)))


def node_addrs(node: Node) -> NodeAddrs:
    ip4 = ip6 = None
    for a in node.internal_ips:
        try:
            ver = ipaddress.ip_address(a).version
        except ValueError:
            continue
        if ver == 4 and ip4 is None:
            ip4 = a
        elif ver == 6 and ip6 is None:
            ip6 = a
    podnet = node.podnet_report   # status.podnet, or its annotation (the Kubernetes API)
    published = str(podnet.get(MAC_STATUS_FIELD) or "")
    mac = published or (vtep_mac(ip4) if ip4 else "")
    sub4, sub6 = (str(podnet.get(SUBNET_FIELDS[f]) or "") or None for f in (4, 6))
    return NodeAddrs(node.name, ip4, ip6, mac, sub4, sub6)


@dataclass(frozen=True)
class BlockInfo:
    cidr: str
    node: str
    borrowed: tuple[tuple[str, str], ...]  # (address, borrowing node)


def block_info(block: Resource) -> BlockInfo | None:
    """An IPAMBlock's cidr, affine node and borrowed addresses; None when unusable."""
    spec = block.spec
    try:
        net = ipaddress.ip_network(str(spec.get("cidr", "")), strict=False)
    except ValueError:
        return None
    aff = str(spec.get("affinity") or "")
    owner = aff[5:] if aff.startswith("host:") else ""
    borrowed = []
    for ordinal, handle in (spec.get("allocations") or {}).items():
        holder = str(handle).split("/")[0] if str(handle).count("/") == 3 else ""
        if holder and holder != owner:
            try:
                borrowed.append((str(net[int(ordinal)]), holder))
            except (ValueError, IndexError):
                continue
    return BlockInfo(str(net), owner, tuple(sorted(borrowed)))


def block_destinations(blocks: Iterable[Resource], pools: list[IPPool],
                       default: str) -> Iterator[tuple[str, str, str]]:
    """(destination, node, the pool's vxlanMode) of every block with a node, and of every
    address another node borrowed from a block."""
    for b in blocks:
        info = block_info(b)
        if info is None:
            continue
        mode = pool_mode(info.cidr, pools, default)
        if info.node:
            yield info.cidr, info.node, mode
        for ip, holder in info.borrowed:
            yield f"{ip}/{32 if ipaddress.ip_address(ip).version == 4 else 128}", holder, mode


def plan_routes(node_name: str, nodes: Iterable[Node], blocks: Iterable[Resource],
                encap: str = "none", pools: Iterable[IPPool] = (),
                routing: str = "static") -> RoutePlan:
    """Everything node `node_name` needs to reach the other nodes' pods."""
    addrs = {n.name: node_addrs(n) for n in nodes}
    me = addrs.get(node_name)
    pools = list(pools)
    default = DEFAULT_MODES.get(encap, "Never")
    routes: set[Route] = set()
    unroutable: set[Route] = set()
    neighbours: set[Neighbour] = set()
    fdb: set[Fdb] = set()

    def add(dst: str, owner: str, mode: str) -> None:
        peer = addrs.get(owner)
        if owner == node_name or peer is None:
            return
        fam = ipaddress.ip_network(dst).version
        # the underlay the packet crosses: IPv4 for VXLAN (our VTEPs), the block's otherwise
        ufam = 4 if mode != "Never" else fam
        how = crossing(mode, same_subnet(me.subnet(ufam) if me else None, peer.subnet(ufam)), routing)
        if how is Crossing.ENCAP:
            if not peer.ip4 or not peer.mac:
                return
            gw = peer.ip4 if fam == 4 else link_local_of(peer.mac)
            routes.add(Route(dst, gw, VXLAN_DEV, owner))
            neighbours.add(Neighbour(gw, peer.mac))
            fdb.add(Fdb(peer.mac, peer.ip4))
        elif how is Crossing.DIRECT or how is Crossing.UNROUTABLE:
            gw4_or_6 = peer.ip4 if fam == 4 else peer.ip6
            if gw4_or_6:
                (routes if how is Crossing.DIRECT else unroutable).add(Route(dst, gw4_or_6, "", owner))

    for dst, owner, mode in block_destinations(blocks, pools, default):
        add(dst, owner, mode)
    return RoutePlan(tuple(sorted(routes)), tuple(sorted(neighbours)), tuple(sorted(fdb)),
                     tuple(sorted(unroutable)))
