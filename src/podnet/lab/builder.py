"""Build a lab's namespaces and links from its LabSpec (lab/topology.py).

Every kernel change happens inside a namespace this module just created: each `ip`
batch runs with `-n <lab netns>`, veths are created inside a lab namespace with their
peer placed directly into another lab namespace, sysctls are written by a thread that
joined the lab namespace. Nothing is ever created in the machine's own namespace, not
even for an instant.
"""
from __future__ import annotations

from typing import Callable

from podnet.dataplane.net.links import IpBatch
from podnet.dataplane.net.sysctl import NODE_SYSCTLS, write_sysctls
from podnet.lab.topology import LabSpec, NodeSpec

Progress = Callable[[str], None]

_NO_DAD = {"net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0}
_ROUTER_SYSCTLS = {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}


def create_namespaces(spec: LabSpec, names: list[str]) -> None:
    b = IpBatch(None)
    for n in names:
        b.add(f"netns add {n}")
    b.run()


def build(spec: LabSpec, progress: Progress = lambda s: None) -> list[str]:
    """Create the underlay, router, outside world and node namespaces, wired and
    addressed. Returns the namespaces created (also on the way to an error, the caller
    records them first: see `planned_netns`)."""
    names = spec.all_netns
    create_namespaces(spec, names)
    progress(f"namespaces: {', '.join(names)}")
    for ns in names:
        # before any link exists, so every link is born without duplicate address detection
        write_sysctls(ns, _NO_DAD)
    ul, rt, out = spec.underlay_netns, spec.router_netns, spec.outside_netns
    v6 = spec.dual_stack

    u = IpBatch(ul).add("link set lo up")
    for rack in range(spec.racks):  # one bridge per rack: its own L2 segment
        u.add(f"link add br{rack} type bridge").add(f"link set br{rack} up")
    u.run()

    r = IpBatch(rt).add("link set lo up")
    r.add(f"link add eth1 type veth peer name eth0 netns {out}")
    r.add(f"addr add {spec.router_out4}/{spec.out4_len} dev eth1")
    if v6:
        r.add(f"addr add {spec.router_out6}/{spec.out6_len} dev eth1 nodad")
    for rack in range(spec.racks):
        dev, port = spec.router_port(rack)
        r.add(f"link add {dev} type veth peer name {port} netns {ul}")
        r.add(f"addr add {spec.rack_router4(rack)}/{spec.ul4_len} dev {dev}")
        if v6:
            r.add(f"addr add {spec.rack_router6(rack)}/{spec.ul6_len} dev {dev} nodad")
        r.add(f"link set {dev} up")
    r.add("link set eth1 up").run()
    write_sysctls(rt, _ROUTER_SYSCTLS)

    o = IpBatch(out).add("link set lo up")
    o.add(f"addr add {spec.echo4}/{spec.out4_len} dev eth0")
    # the outside world knows the nodes (their SNATed traffic) but no pod network; with
    # BGP the router is its way to everything (the router learns where pods live)
    bgp = spec.routing == "bgp"
    o.add("link set eth0 up")
    for to4 in (["default"] if bgp else spec.underlays4):
        o.add(f"route add {to4} via {spec.router_out4}")
    if v6:
        o.add(f"addr add {spec.echo6}/{spec.out6_len} dev eth0 nodad")
        for to6 in (["::/0"] if bgp else spec.underlays6):
            o.add(f"route add {to6} via {spec.router_out6}")
    o.run()
    progress(f"underlay {', '.join(spec.underlays4)}, router {spec.router_ul4}, outside world {spec.outside4}")

    for node in spec.nodes:
        build_node(spec, node, attach=False)
    u = IpBatch(ul)
    ports = [(spec.router_port(r)[1], r) for r in range(spec.racks)] + [(n.bridge_port, n.rack) for n in spec.nodes]
    for port, rack in ports:
        u.add(f"link set {port} master br{rack}").add(f"link set {port} up")
    u.run()
    progress(f"nodes: {', '.join(f'{n.name} {n.ip4}' for n in spec.nodes)}")
    return names


def add_node(spec: LabSpec, node: NodeSpec) -> None:
    """One more node in a built lab (`podnet node add`): its namespace, wired to the
    underlay's bridge and addressed as `build` would have done it."""
    create_namespaces(spec, [node.netns])
    write_sysctls(node.netns, _NO_DAD)
    build_node(spec, node, attach=True)


def build_node(spec: LabSpec, node: NodeSpec, attach: bool) -> None:
    """The node's eth0 (a veth whose peer is its port on its rack's bridge), its
    addresses, default routes via the rack's router and sysctls; `attach`: enslave the port now."""
    n = IpBatch(node.netns).add("link set lo up")
    n.add(f"link add eth0 mtu {spec.mtu} type veth peer name {node.bridge_port} netns {spec.underlay_netns}")
    n.add(f"addr add {node.ip4}/{spec.ul4_len} dev eth0")
    if node.ip6:
        n.add(f"addr add {node.ip6}/{spec.ul6_len} dev eth0 nodad")
    n.add("link set eth0 up").add(f"route add default via {spec.rack_router4(node.rack)}")
    if node.ip6:
        n.add(f"route add ::/0 via {spec.rack_router6(node.rack)}")
    n.run()
    write_sysctls(node.netns, NODE_SYSCTLS)
    if attach:  # its rack's bridge
        IpBatch(spec.underlay_netns).add(f"link set {node.bridge_port} master br{node.rack}") \
            .add(f"link set {node.bridge_port} up").run()
