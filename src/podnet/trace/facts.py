"""What trace needs to know about the machine around the cluster: the lab's topology.

trace may not import podnet.lab (they are siblings in the layering), so the CLI hands
over these facts, built from the lab's spec with `from_spec` (duck-typed). MACs the
kernel picks at random (node eth0, the router) are unknown to a pure prediction: they
are shown symbolically (`<eth0 of node n1>`) unless `macs` holds them ("netns/dev").
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Mapping

from podnet.api import defaults


@dataclass(frozen=True)
class NodeFacts:
    name: str
    netns: str
    ip4: str
    ip6: str | None
    rack: int = 0  # its L2 segment (LabFacts.racks)


@dataclass(frozen=True)
class RackFacts:
    """One L2 segment of the underlay: its subnets, the router's address and link there
    (the nodes' gateway), the router's port on the segment's bridge."""
    index: int
    net4: str
    net6: str
    router4: str
    router6: str
    router_dev: str = "eth0"  # the router's link into this rack
    router_port: str = "rt"  # its peer: a port of the rack's bridge in the underlay netns
    bridge: str = "br0"


@dataclass(frozen=True)
class LabFacts:
    name: str
    nodes: tuple[NodeFacts, ...]
    encap: str = "none"  # none | vxlan
    underlay_netns: str = "<underlay netns>"
    router_netns: str = "<router netns>"
    outside_netns: str = "<outside netns>"
    router_ul4: str = "198.18.0.1"
    router_ul6: str = "fd00:198:18::1"
    router_out4: str = "203.0.113.1"
    router_out6: str = "fd00:203:113::1"
    underlay4: str = defaults.UNDERLAY_V4
    underlay6: str = defaults.UNDERLAY_V6
    outside4: str = defaults.OUTSIDE_V4
    outside6: str = defaults.OUTSIDE_V6
    echo4: str = "203.0.113.10"
    echo6: str = "fd00:203:113::10"
    echo_ports: tuple[tuple[int, str], ...] = ((80, "TCP"), (9000, "UDP"), (9000, "TCP"))
    macs: Mapping[str, str] = field(default_factory=dict)
    # names the outside world's DNS answers (cluster DNS forwards to it): name -> addresses
    outside_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    routing: str = "static"  # static | bgp (BIRD learned the routes: `proto bird`)
    # `podnet up --racks N`: one segment per rack, routed by the router; () is one segment
    # (underlay4/6, the router's eth0 at router_ul4/6, bridge br0)
    racks: tuple[RackFacts, ...] = ()
    # netns -> BIRD's control socket there (the nodes' and the router's, with BGP)
    bird_ctl: Mapping[str, str] = field(default_factory=dict)

    def node(self, name: str) -> NodeFacts | None:
        return next((n for n in self.nodes if n.name == name), None)

    def node_by_ip(self, ip: str) -> NodeFacts | None:
        return next((n for n in self.nodes if ip in (n.ip4, n.ip6)), None)

    def node_ip(self, name: str, family: int) -> str | None:
        n = self.node(name)
        return None if n is None else (n.ip4 if family == 4 else n.ip6)

    def router_ip(self, family: int, node: str = "") -> str:
        """The router's address on the segment of `node` (its gateway); the first segment's
        when no node is named."""
        r = self.rack_of(node) if node else self.segments[0]
        return r.router4 if family == 4 else r.router6

    @property
    def segments(self) -> tuple[RackFacts, ...]:
        return self.racks or (RackFacts(0, self.underlay4, self.underlay6, self.router_ul4, self.router_ul6),)

    def rack_of(self, node: str) -> RackFacts:
        n = self.node(node)
        want = n.rack if n is not None else 0
        return next((r for r in self.segments if r.index == want), self.segments[0])

    def rack_of_ip(self, ip: str) -> RackFacts | None:
        """The segment whose subnet holds `ip`, if any."""
        a = ipaddress.ip_address(ip)
        for r in self.segments:
            net = ipaddress.ip_network(r.net4 if a.version == 4 else r.net6)
            if a in net:
                return r
        return None

    def rack_by_router_dev(self, dev: str) -> RackFacts | None:
        return next((r for r in self.segments if r.router_dev == dev), None)

    def in_outside(self, ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        return any(a in ipaddress.ip_network(c) for c in (self.outside4, self.outside6)
                   if ipaddress.ip_network(c).version == a.version)

    def in_underlay(self, ip: str) -> bool:
        return self.rack_of_ip(ip) is not None

    def mac(self, netns: str, dev: str, label: str) -> str:
        return self.macs.get(f"{netns}/{dev}") or f"<{dev} of {label}>"

    def with_macs(self, macs: Mapping[str, str]) -> "LabFacts":
        return LabFacts(**{**self.__dict__, "macs": dict(macs)})


def from_spec(spec: Any, outside_hosts: tuple[str, ...] = (), outside_zone: str = "",
              bird_ctl: Mapping[str, str] | None = None) -> LabFacts:
    """From a podnet.lab.topology.LabSpec (read by attribute, not imported), the host
    names of the outside world's DNS zone (they all name the echo server) and, with BGP,
    where each namespace's BIRD listens (netns -> control socket)."""
    bird_ctl = bird_ctl or {}
    nodes = tuple(NodeFacts(n.name, n.netns, n.ip4, n.ip6, getattr(n, "rack", 0)) for n in spec.nodes)
    racks: tuple[RackFacts, ...] = ()
    if getattr(spec, "racks", 1) > 1:
        racks = tuple(RackFacts(r, spec.rack_net4(r), spec.rack_net6(r), spec.rack_router4(r),
                                spec.rack_router6(r), spec.router_port(r)[0], spec.router_port(r)[1],
                                f"br{r}") for r in range(spec.racks))
    return LabFacts(spec.name, nodes, spec.encap, spec.underlay_netns, spec.router_netns,
                    spec.outside_netns, spec.router_ul4, spec.router_ul6, spec.router_out4,
                    spec.router_out6, spec.underlay4,
                    spec.underlay6, spec.outside4, spec.outside6, spec.echo4, spec.echo6,
                    outside_names={f"{h}.{outside_zone}": (spec.echo4, spec.echo6)
                                   for h in outside_hosts},
                    routing=getattr(spec, "routing", "static"), racks=racks, bird_ctl=dict(bird_ctl))
