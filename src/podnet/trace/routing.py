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
from podnet.calc.routes import VXLAN_DEV, Route, node_addrs, plan_routes
from podnet.dataplane.net.podwire import GATEWAY_V4, GATEWAY_V6, host_ifname
from podnet.trace.facts import LabFacts

POD_IFNAME = "eth0"
UNDERLAY_DEV = "eth0"  # a node's (and the router's) link to the underlay bridge
ROUTER_OUT_DEV = "eth1"


@dataclass(frozen=True)
class Decision:
    """One route lookup: the route as `ip route` prints it, and where the packet goes."""
    route: str
    dev: str
    gateway: str | None
    to: str  # pod | node | router | outside | local | none
    to_name: str = ""  # pod "ns/name" or node name


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
    plan = plan_routes(node, state.nodes, state.of_kind("IPAMBlock"), facts.encap, state.ippools)
    return list(plan.routes)


BIRD_PROTO = "proto bird metric 32"  # how the kernel shows a route BIRD installed


def _bgp_note(node: str, ip: str) -> str:
    return f"  [learned over BGP: announced by {node}]"


def _route_text(r: Route, facts: LabFacts) -> str:
    if facts.routing == "bgp":  # BIRD's route: the owner announced it with itself as next hop
        return f"{r.dst} via {r.gateway} dev {UNDERLAY_DEV} {BIRD_PROTO}" + _bgp_note(r.node, r.gateway)
    if r.dev == VXLAN_DEV:
        return f"{r.dst} via {r.gateway} dev {VXLAN_DEV} onlink proto {ROUTE_PROTO}"
    return f"{r.dst} via {r.gateway} dev {UNDERLAY_DEV} proto {ROUTE_PROTO}"


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
    best: Route | None = None
    for r in block_routes(state, facts, node):
        net = ipaddress.ip_network(r.dst)
        if net.version == fam and a in net and (best is None or
                                                net.prefixlen > ipaddress.ip_network(best.dst).prefixlen):
            best = r
    if best is not None:
        dev = VXLAN_DEV if best.dev == VXLAN_DEV else UNDERLAY_DEV
        return Decision(_route_text(best, facts), dev, best.gateway, "node", best.node)
    if facts.in_underlay(str(a)):
        underlay = facts.underlay4 if fam == 4 else facts.underlay6
        peer = facts.node_by_ip(str(a))
        to, name = ("node", peer.name) if peer else ("router", "")
        return Decision(f"{underlay} dev {UNDERLAY_DEV} proto kernel scope link", UNDERLAY_DEV, None, to, name)
    gw = facts.router_ip(fam)
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
    if facts.in_underlay(dst):
        net = facts.underlay4 if a.version == 4 else facts.underlay6
        peer = facts.node_by_ip(dst)
        return Decision(f"{net} dev {UNDERLAY_DEV} proto kernel scope link", UNDERLAY_DEV, None,
                        "node" if peer else "none", peer.name if peer else "")
    return Decision("no route (the router knows only the underlay and the outside world)", "", None, "none")


def _router_bgp_route(state: ClusterState, facts: LabFacts,
                      a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Decision | None:
    """The router's ToR view: what every node announces (its blocks and borrowed
    addresses; the routes a node would install toward them, seen from nowhere), the
    longest match for `a`."""
    best: Route | None = None
    for r in plan_routes("", state.nodes, state.of_kind("IPAMBlock"), "none").routes:
        net = ipaddress.ip_network(r.dst)
        if net.version == a.version and a in net and (best is None or
                                                      net.prefixlen > ipaddress.ip_network(best.dst).prefixlen):
            best = r
    if best is None:
        return None
    return Decision(f"{best.dst} via {best.gateway} dev {UNDERLAY_DEV} {BIRD_PROTO}"
                    + _bgp_note(best.node, best.gateway), UNDERLAY_DEV, best.gateway, "node", best.node)


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
