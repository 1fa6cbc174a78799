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

    def node(self, name: str) -> NodeFacts | None:
        return next((n for n in self.nodes if n.name == name), None)

    def node_by_ip(self, ip: str) -> NodeFacts | None:
        return next((n for n in self.nodes if ip in (n.ip4, n.ip6)), None)

    def node_ip(self, name: str, family: int) -> str | None:
        n = self.node(name)
        return None if n is None else (n.ip4 if family == 4 else n.ip6)

    def router_ip(self, family: int) -> str:
        return self.router_ul4 if family == 4 else self.router_ul6

    def in_outside(self, ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        return any(a in ipaddress.ip_network(c) for c in (self.outside4, self.outside6)
                   if ipaddress.ip_network(c).version == a.version)

    def in_underlay(self, ip: str) -> bool:
        a = ipaddress.ip_address(ip)
        return any(a in ipaddress.ip_network(c) for c in (self.underlay4, self.underlay6)
                   if ipaddress.ip_network(c).version == a.version)

    def mac(self, netns: str, dev: str, label: str) -> str:
        return self.macs.get(f"{netns}/{dev}") or f"<{dev} of {label}>"

    def with_macs(self, macs: Mapping[str, str]) -> "LabFacts":
        return LabFacts(**{**self.__dict__, "macs": dict(macs)})


def from_spec(spec: Any, outside_hosts: tuple[str, ...] = (), outside_zone: str = "") -> LabFacts:
    """From a podnet.lab.topology.LabSpec (read by attribute, not imported), and the
    host names of the outside world's DNS zone (they all name the echo server)."""
    nodes = tuple(NodeFacts(n.name, n.netns, n.ip4, n.ip6) for n in spec.nodes)
    return LabFacts(spec.name, nodes, spec.encap, spec.underlay_netns, spec.router_netns,
                    spec.outside_netns, spec.router_ul4, spec.router_ul6, spec.router_out4,
                    spec.router_out6, spec.underlay4,
                    spec.underlay6, spec.outside4, spec.outside6, spec.echo4, spec.echo6,
                    outside_names={f"{h}.{outside_zone}": (spec.echo4, spec.echo6)
                                   for h in outside_hosts},
                    routing=getattr(spec, "routing", "static"))
