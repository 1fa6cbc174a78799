"""The routing decisions of each kind of namespace in the lab, as the kernel takes them.
Pure: from calc's route plan (calc/routes.py), the pods' wiring (dataplane/net/podwire.py) and the
lab's facts.

A node's table: a /32 (/128) `dev <pod veth>` per local pod (the CNI plugin adds it),
the routes to other nodes' blocks (direct `via <node IP>`, or `via ... dev pnvx onlink`
with VXLAN), its underlay subnet on eth0, and a default route via the lab's router.
A pod's table: a default route via 169.254.1.1 (IPv6: the host end's link-local),
answered by proxy ARP on the host end of the veth.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.api.defaults import ROUTE_PROTO
from podnet.api.objects import Node, Pod
from podnet.calc.model import ClusterState
from podnet.calc.bgp import DEFAULT_ASN, cluster_config, node_asn, plan_bgp
from podnet.calc.encap import DEFAULT_MODES, Crossing, crossing, same_subnet
from podnet.calc.routes import VXLAN_DEV, Route, block_destinations, node_addrs, plan_routes
from podnet.dataplane.net.podwire import GATEWAY_V4, GATEWAY_V6, host_ifname
from podnet.trace.facts import LabFacts

POD_IFNAME = "eth0"
UNDERLAY_DEV = "eth0"  # a node's (and the router's) link to the underlay bridge
ROUTER_OUT_DEV = "eth1"


@dataclass(frozen=True)
class Bgp:
    """Where a route BIRD installed came from: the node announcing the prefix (its next
    hop), and the session this node learned it over (calc.bgp's peer name; BIRD's
    protocol name)."""
    owner: str
    next_hop: str
    session: str
    peer: str  # the node (or address) at the other end of that session
    as_path: str = ""  # "" inside one AS (iBGP); the announcing node's AS over eBGP


@dataclass(frozen=True)
class Decision:
    """One route lookup: the route as `ip route` prints it, and where the packet goes."""
    route: str
    dev: str
    gateway: str | None
    to: str  # pod | node | router | outside | local | none
    to_name: str = ""  # pod "ns/name" or node name
    via_router: bool = False  # to a node of another rack: handed to the rack's router first
    bgp: Bgp | None = None  # the route is BIRD's (`proto bird`)

    def data(self, src: str, dst: str) -> dict[str, object]:
        """The route step's machine-readable part (what confirm.py checks)."""
        d: dict[str, object] = {"src": src, "dst": dst, "route": self.route, "dev": self.dev,
                                "gateway": self.gateway}
        if self.bgp is not None:
            d["bgp"] = {"prefix": self.route.split()[0], "owner": self.bgp.owner,
                        "next_hop": self.bgp.next_hop, "session": self.bgp.session, "peer": self.bgp.peer,
                        "as_path": self.bgp.as_path}
        return d


def veth_of(pod: Pod) -> str:
    return host_ifname(pod.uid, POD_IFNAME)


def plen(family: int) -> int:
    return 32 if family == 4 else 128


def pod_routes(family: int) -> list[str]:
    if family == 4:
        return [f"default via {GATEWAY_V4} dev {POD_IFNAME}", f"{GATEWAY_V4} dev {POD_IFNAME} scope link"]
    return [f"default via {GATEWAY_V6} dev {POD_IFNAME}"]


def pod_decision(family: int) -> Decision:
    gw = GATEWAY_V4 if family == 4 else GATEWAY_V6
    return Decision(f"default via {gw} dev {POD_IFNAME}", POD_IFNAME, gw, "node")


def local_pods(state: ClusterState, node: str) -> dict[str, Pod]:
    out: dict[str, Pod] = {}
    for p in state.pods:
        if p.node_name == node and not p.host_network:
            for ip in p.pod_ips:
                out[str(ipaddress.ip_address(ip))] = p
    return out


def block_routes(state: ClusterState, facts: LabFacts, node: str) -> list[Route]:
    """The routes the agent installs toward other nodes' blocks (proto ROUTE_PROTO): all
    of them with static routing; with BGP those of the pools that may encapsulate."""
    plan = plan_routes(node, state.nodes, state.of_kind("IPAMBlock"), facts.encap, state.ippools,
                       facts.routing)
    return list(plan.routes)


BIRD_PROTO = "proto bird metric 32"  # how the kernel shows a route BIRD installed


def bird_routes(state: ClusterState, facts: LabFacts, node: str) -> list[tuple[Route, Bgp]]:
    """The routes BIRD installs on `node` (`--routing bgp`): every other node's block (and
    borrowed address) whose crossing calc.encap leaves to BGP (vxlanMode Never), with the
    announcing node as BGP next hop, and the session that brought it (calc.bgp's plan: the
    owner itself in a mesh, else the route reflector peered with)."""
    if facts.routing != "bgp":
        return []
    nodes = state.nodes
    addrs = {n.name: node_addrs(n) for n in nodes}
    me = addrs.get(node)
    if me is None:
        return []
    pools = state.ippools
    default = DEFAULT_MODES.get(facts.encap, "Never")
    plan = plan_bgp(node, nodes, state.of_kind("IPAMBlock"), pools, state.of_kind("BGPConfiguration"),
                    state.of_kind("BGPPeer"), default_mode=default)
    internal = [p for p in (plan.peers if plan else ()) if p.internal]
    by_ip = {ip: name for name, a in addrs.items() for ip in (a.ip4, a.ip6) if ip}
    out: list[tuple[Route, Bgp]] = []

    def add(dst: str, owner: str, mode: str) -> None:
        peer = addrs.get(owner)
        if owner == node or peer is None:
            return
        fam = ipaddress.ip_network(dst).version
        if crossing(mode, same_subnet(me.subnet(fam), peer.subnet(fam)), "bgp") is not Crossing.BGP:
            return
        hop = peer.ip4 if fam == 4 else peer.ip6
        if not hop:
            return
        sess = [p for p in internal if p.family == fam and p.ip == hop] or \
            [p for p in internal if p.family == fam and p.name.startswith("pn_rr_")]
        if not sess:
            return  # no session brings it: BIRD installs nothing
        path = str(sess[0].asn) if plan is not None and sess[0].asn != plan.asn else ""
        out.append((Route(dst, hop, "", owner), Bgp(owner, hop, sess[0].name, by_ip.get(sess[0].ip, sess[0].ip),
                                                     path)))

    for dst, owner, mode in block_destinations(state.of_kind("IPAMBlock"), pools, default):
        add(dst, owner, mode)
    return out


def _bgp_note(b: Bgp, via: str) -> str:
    frm = "" if b.peer == b.owner else f", learned from {b.peer}"
    hop = f", next hop {b.next_hop} resolved via the rack's router" if via != b.next_hop else ""
    ebgp = f", eBGP from AS {b.as_path}" if b.as_path else ""
    return f"  [learned over BGP: announced by {b.owner}{frm} (session {b.session}{ebgp}){hop}]"


def _route_text(r: Route) -> str:
    if r.dev == VXLAN_DEV:
        return f"{r.dst} via {r.gateway} dev {VXLAN_DEV} onlink proto {ROUTE_PROTO}"
    return f"{r.dst} via {r.gateway} dev {UNDERLAY_DEV} proto {ROUTE_PROTO}"


def _longest(routes: list[tuple[Route, Bgp | None]], a: ipaddress.IPv4Address | ipaddress.IPv6Address
             ) -> tuple[Route, Bgp | None] | None:
    best: tuple[Route, Bgp | None] | None = None
    for r, b in routes:
        net = ipaddress.ip_network(r.dst)
        if net.version == a.version and a in net and (
                best is None or net.prefixlen > ipaddress.ip_network(best[0].dst).prefixlen):
            best = (r, b)
    return best


def node_decision(state: ClusterState, facts: LabFacts, node: str, dst: str) -> Decision:
    a = ipaddress.ip_address(dst)
    fam = a.version
    pod = local_pods(state, node).get(str(a))
    if pod is not None:
        dev = veth_of(pod)
        scope = " scope link" if fam == 4 else ""
        return Decision(f"{a}/{plen(fam)} dev {dev}{scope}", dev, None, "pod", f"{pod.namespace}/{pod.name}")
    me = facts.node(node)
    if me is not None and str(a) in (me.ip4, me.ip6):
        return Decision(f"local {a} dev {UNDERLAY_DEV} table local", "lo", None, "local", node)
    rack = facts.rack_of(node)
    gw = rack.router4 if fam == 4 else rack.router6
    found = _longest([(r, None) for r in block_routes(state, facts, node)] +
                     [(r, b) for r, b in bird_routes(state, facts, node)], a)
    if found is not None:
        r, b = found
        if b is not None:  # BIRD's: next hop on this segment, or resolved through the default route
            near = facts.rack_of_ip(r.gateway) == rack
            via = r.gateway if near else gw
            return Decision(f"{r.dst} via {via} dev {UNDERLAY_DEV} {BIRD_PROTO}" + _bgp_note(b, via),
                            UNDERLAY_DEV, via, "node", r.node, via_router=not near, bgp=b)
        dev = VXLAN_DEV if r.dev == VXLAN_DEV else UNDERLAY_DEV
        return Decision(_route_text(r), dev, r.gateway, "node", r.node)
    mine = rack.net4 if fam == 4 else rack.net6
    if a in ipaddress.ip_network(mine):
        peer = facts.node_by_ip(str(a))
        to, name = ("node", peer.name) if peer else ("router", "")
        return Decision(f"{mine} dev {UNDERLAY_DEV} proto kernel scope link", UNDERLAY_DEV, None, to, name)
    peer = facts.node_by_ip(str(a))  # another rack's node: through the router
    if peer is not None:
        return Decision(f"default via {gw} dev {UNDERLAY_DEV}", UNDERLAY_DEV, gw, "node", peer.name,
                        via_router=True)
    return Decision(f"default via {gw} dev {UNDERLAY_DEV}", UNDERLAY_DEV, gw, "router")


def router_decision(facts: LabFacts, dst: str, state: ClusterState | None = None) -> Decision:
    a = ipaddress.ip_address(dst)
    if facts.routing == "bgp" and state is not None and not facts.in_outside(dst) \
            and not facts.in_underlay(dst):
        learned = _router_bgp_route(state, facts, a)
        if learned is not None:
            return learned
    if facts.in_outside(dst):
        net = facts.outside4 if a.version == 4 else facts.outside6
        return Decision(f"{net} dev {ROUTER_OUT_DEV} proto kernel scope link", ROUTER_OUT_DEV, None, "outside")
    rack = facts.rack_of_ip(dst)
    if rack is not None:
        net = rack.net4 if a.version == 4 else rack.net6
        peer = facts.node_by_ip(dst)
        return Decision(f"{net} dev {rack.router_dev} proto kernel scope link", rack.router_dev, None,
                        "node" if peer else "none", peer.name if peer else "")
    return Decision("no route (the router knows only the underlay and the outside world)", "", None, "none")


def _router_bgp_route(state: ClusterState, facts: LabFacts,
                      a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Decision | None:
    """The router's ToR view: what every node announces to it (its blocks and borrowed
    addresses, over the session of its rack), the longest match for `a`."""
    found = _longest([(r, None) for r in plan_routes("", state.nodes, state.of_kind("IPAMBlock"),
                                                        "none").routes], a)
    if found is None:
        return None
    best = found[0]
    rack = facts.rack_of(best.node)
    owner = state.get("Node", "", best.node)
    cluster = int(cluster_config(state.of_kind("BGPConfiguration")).get("asNumber") or DEFAULT_ASN)
    asn = node_asn(owner, cluster) if isinstance(owner, Node) else cluster
    b = Bgp(best.node, best.gateway, "", best.node, str(asn))  # the router is in an AS of its own
    return Decision(f"{best.dst} via {best.gateway} dev {rack.router_dev} {BIRD_PROTO}"
                    f"  [learned over BGP: announced by {best.node}]", rack.router_dev, best.gateway,
                    "node", best.node, bgp=b)


def outside_decision(facts: LabFacts, dst: str) -> Decision:
    a = ipaddress.ip_address(dst)
    if facts.routing == "bgp" and not facts.in_outside(dst):
        # with BGP the router is the outside world's way to everything (it knows the pods)
        gw = facts.router_out4 if a.version == 4 else facts.router_out6
        return Decision(f"default via {gw} dev eth0", "eth0", gw, "router")
    if facts.in_underlay(dst):
        net = facts.underlay4 if a.version == 4 else facts.underlay6
        gw = facts.router_out4 if a.version == 4 else facts.router_out6
        return Decision(f"{net} via {gw} dev eth0", "eth0", gw, "router")
    return Decision("no route (the outside world knows the nodes' underlay, not the pod network)",
                    "", None, "none")


def vtep_mac(state: ClusterState, node: str) -> str:
    n = state.get("Node", "", node)
    return node_addrs(n).mac if isinstance(n, Node) else f"<{VXLAN_DEV} of node {node}>"
