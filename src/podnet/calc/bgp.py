"""What one node's BGP speaker (BIRD) must do, from the datastore's objects. Pure.

Input: Nodes (addresses, labels, `spec.bgp.routeReflectorClusterID`), IPAMBlocks, IPPools,
BGPConfiguration `default` and BGPPeers. Output: a `BgpPlan`: the node's AS and router id,
its sessions, the prefixes it originates (its own blocks; Service ranges to peers outside
the cluster) and the prefixes it accepts (inside podnet's pools only). Calico's semantics:

- nodeToNodeMeshEnabled (default true): every node peers with every other node, per family.
- A node's AS is its own `spec.bgp.asNumber` (Calico's Node field; "AS per rack" designs set
  one per rack), else the BGPConfiguration's `asNumber`, else DEFAULT_ASN. Two nodes of
  different ASes peer over eBGP; a reflector's clients are the nodes of its own AS only.
- A BGPPeer applies to the node it names (`node`), the nodes its `nodeSelector` matches, or
  every node. `peerIP` + `asNumber` is one peer; `peerSelector` makes every matching node a
  peer (in the cluster's AS): route reflectors. A reflector (a Node with a cluster id) treats
  every non-reflector node it peers with as its client.
- Service addresses: see `advertised_services`.
- A peer on another subnet (another rack: the nodes publish their interface subnets) is
  multihop, its next hops resolved through the node's default route (the rack's router).
- Pools that may encapsulate (vxlanMode Always, CrossSubnet) are routed by the agent, as
  Calico's Felix routes VXLAN pools: BIRD still announces their blocks but installs none.
- A node originates its own blocks, and a /32 (/128) for each address it borrowed from
  another node's block. A pool with `disableBGPExport` is not advertised to peers outside the cluster; nodes
  still route its blocks to each other.
The renderer (dataplane/bird/conf.py) turns the plan into BIRD's configuration.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable

from podnet.api.objects import EndpointSlice, IPPool, Node, Resource, Service
from podnet.api.selector import LabelSelector, parse_calico
from podnet.calc.encap import encapsulated_pools, same_subnet
from podnet.calc.routes import block_info, node_addrs

DEFAULT_ASN = 64512
CONFIG_NAME = "default"  # the BGPConfiguration that counts, as in Calico
SERVICE_RANGES = ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs")


@dataclass(frozen=True, order=True)
class Peer:
    name: str  # BIRD protocol name: pn_<what>_<family>
    ip: str
    asn: int
    internal: bool  # another node of the cluster (routes are not filtered by disableBGPExport)
    rr_client: bool = False
    multihop: bool = False  # not on this node's subnet (another rack): next hops resolved recursively

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.ip).version


@dataclass(frozen=True)
class BgpPlan:
    node: str
    router_id: str
    asn: int
    local4: str | None
    local6: str | None
    rr_cluster_id: str  # "" unless this node is a route reflector
    peers: tuple[Peer, ...]
    blocks: tuple[str, ...]  # this node's own blocks: originated to every peer
    no_export: tuple[str, ...]  # pools not advertised to peers outside the cluster
    services: tuple[str, ...]  # Service ranges originated to peers outside the cluster
    accept: tuple[str, ...]  # pool CIDRs: the only prefixes imported
    no_kernel: tuple[str, ...] = ()  # pools the agent routes (vxlanMode Always/CrossSubnet)

    @property
    def multihop(self) -> bool:
        return any(p.multihop for p in self.peers)

    def of_family(self, items: Iterable[str], fam: int) -> list[str]:
        return [p for p in items if ipaddress.ip_network(p).version == fam]


def _selector(text: Any) -> LabelSelector:
    s = str(text or "").strip()
    return LabelSelector.everything() if s in ("", "all()") else parse_calico(s)


def rr_cluster_id(node: Node) -> str:
    bgp = node.spec.get("bgp") if isinstance(node.spec.get("bgp"), dict) else {}
    return str((bgp or {}).get("routeReflectorClusterID") or "")


def node_asn(node: Node, default: int) -> int:
    """The node's own AS (`spec.bgp.asNumber`), or `default` (the cluster's)."""
    bgp = node.spec.get("bgp") if isinstance(node.spec.get("bgp"), dict) else {}
    v = (bgp or {}).get("asNumber")
    return v if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4294967295 else default


def cluster_config(configs: Iterable[Resource]) -> dict[str, Any]:
    for c in configs:
        if c.name == CONFIG_NAME:
            return dict(c.spec)
    return {}


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _applies(peer: Resource, node: Node) -> bool:
    spec = peer.spec
    if spec.get("node"):
        return str(spec["node"]) == node.name
    try:
        return _selector(spec.get("nodeSelector")).matches(node.labels)
    except ValueError:
        return False


def plan_bgp(node_name: str, nodes: Iterable[Node], blocks: Iterable[Resource],
             pools: Iterable[IPPool], configs: Iterable[Resource],
             bgp_peers: Iterable[Resource], services: Iterable[Service] = (),
             slices: Iterable[EndpointSlice] = (), default_mode: str = "Never") -> BgpPlan | None:
    """Node `node_name`'s BGP plan; None until its Node (its addresses) is known.
    `default_mode`: the vxlanMode of pools that do not say (the agent's --encap)."""
    by_name = {n.name: n for n in nodes}
    me = by_name.get(node_name)
    if me is None:
        return None
    cfg = cluster_config(configs)
    cluster_asn = int(cfg.get("asNumber") or DEFAULT_ASN)
    asn = node_asn(me, cluster_asn)
    mine = node_addrs(me)
    my_rr = rr_cluster_id(me)
    peers: dict[str, Peer] = {}

    def add_node(other: Node, what: str) -> None:
        if other.name == node_name:
            return
        o = node_addrs(other)
        their = node_asn(other, cluster_asn)
        client = bool(my_rr) and not rr_cluster_id(other) and their == asn  # reflection is iBGP's
        for ip, local in ((o.ip4, mine.ip4), (o.ip6, mine.ip6)):
            if ip and local and ip not in peers:
                fam = ipaddress.ip_address(ip).version
                far = same_subnet(mine.subnet(fam), o.subnet(fam)) is False
                peers[ip] = Peer(f"pn_{what}_{_slug(other.name)}_{fam}", ip, their, True, client, far)

    if cfg.get("nodeToNodeMeshEnabled", True) is not False:
        for other in sorted(by_name.values(), key=lambda n: n.name):
            add_node(other, "mesh")
    node_ips = {ip: n for n in by_name.values() for ip in n.internal_ips}
    ordered = sorted(by_name.values(), key=lambda n: n.name)
    for bp in sorted(bgp_peers, key=lambda p: p.name):
        spec = bp.spec
        if spec.get("peerSelector") is not None:
            try:
                sel = _selector(spec.get("peerSelector"))
            except ValueError:
                continue
            # both ends of a node-to-node peering: Calico's confd renders it on either side
            for other in ordered:
                if (_applies(bp, me) and sel.matches(other.labels)) or \
                        (sel.matches(me.labels) and _applies(bp, other)):
                    add_node(other, "rr" if rr_cluster_id(other) else "node")
            continue
        if not _applies(bp, me):
            continue
        ip = str(spec.get("peerIP") or "")
        try:
            fam = ipaddress.ip_address(ip).version
        except ValueError:
            continue
        if ip in node_ips:
            add_node(node_ips[ip], "node")
        elif (mine.ip4 if fam == 4 else mine.ip6) and ip not in peers:
            peers[ip] = Peer(f"pn_peer_{_slug(bp.name)}_{fam}", ip,
                             int(spec.get("asNumber") or asn), False,
                             multihop=_off_subnet(ip, mine.subnet(fam)))

    own = sorted(_originated(node_name, blocks), key=_net_key)
    workload = [p for p in pools if p.for_workloads and not p.disabled]
    advertised = sorted(advertised_services(node_name, cfg, services, slices), key=_net_key)
    return BgpPlan(node_name, mine.ip4 or _router_id_of(node_name), asn, mine.ip4, mine.ip6,
                   my_rr, tuple(sorted(peers.values())), tuple(own),
                   tuple(sorted({str(p.network) for p in workload if p.spec.get("disableBGPExport")},
                                key=_net_key)),
                   tuple(advertised),
                   tuple(sorted({str(p.network) for p in workload}, key=_net_key)),
                   tuple(sorted(set(encapsulated_pools(workload, default_mode)), key=_net_key)))


def _off_subnet(ip: str, subnet: str | None) -> bool:
    """Whether a peer's address is outside this node's (known) interface subnet."""
    if not subnet:
        return False
    return ipaddress.ip_address(ip) not in ipaddress.ip_interface(subnet).network


def advertised_services(node_name: str, cfg: dict[str, Any], services: Iterable[Service],
                        slices: Iterable[EndpointSlice]) -> set[str]:
    """Calico's Service IP advertisement: every node announces the configured ranges
    (serviceClusterIPs, serviceExternalIPs, serviceLoadBalancerIPs); a Service with
    externalTrafficPolicy Local is also announced as a /32 (/128) of each of its
    addresses inside those ranges, by the nodes with a ready local endpoint only, so the
    router sends its traffic only there (the longer prefix wins over the range)."""
    ranges: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for f in SERVICE_RANGES:
        for r in cfg.get(f) or []:
            if isinstance(r, dict) and _is_net(r.get("cidr")):
                ranges.append(ipaddress.ip_network(str(r["cidr"]), strict=False))
    out = {str(r) for r in ranges}
    local = {(s.namespace, s.service_name) for s in slices
             if any(ep.ready and ep.node_name == node_name for ep in s.endpoints)}
    for svc in services:
        if svc.external_traffic_policy != "Local" or (svc.namespace, svc.name) not in local:
            continue
        for ip in svc.cluster_ips + svc.external_ips + svc.load_balancer_ips:
            try:
                a = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if any(a in r for r in ranges):
                out.add(f"{a}/{a.max_prefixlen}")
    return out


def _originated(node_name: str, blocks: Iterable[Resource]) -> set[str]:
    """The node's affine blocks, and a /32 or /128 per address it borrowed from another
    node's block (longer than that block's route, so it wins, as in Calico)."""
    out: set[str] = set()
    for b in blocks:
        info = block_info(b)
        if info is None:
            continue
        if info.node == node_name:
            out.add(info.cidr)
        for ip, holder in info.borrowed:
            if holder == node_name:
                out.add(str(ipaddress.ip_network(ip)))
    return out


def _is_net(v: Any) -> bool:
    try:
        ipaddress.ip_network(str(v), strict=False)
        return True
    except ValueError:
        return False


def _net_key(cidr: str) -> tuple[int, int, int]:
    n = ipaddress.ip_network(cidr, strict=False)
    return (n.version, int(n.network_address), n.prefixlen)


def _router_id_of(name: str) -> str:
    """A v6-only node still needs a 32-bit router id: one derived from its name."""
    h = sum((i + 1) * ord(c) for i, c in enumerate(name)) & 0xFFFFFF
    return str(ipaddress.IPv4Address(0x0A000000 | h))
