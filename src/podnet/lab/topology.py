"""The lab's topology as data: names and addresses derived from the lab name. Pure.

Kept apart from building it (lab/builder.py), as Mininet keeps its Topo apart from the
Mininet object, so the plan can be printed, tested and torn down from the same data.
Every network namespace is `pn-<lab>-<role>` (role: ul, rt, out, n<i>, p<pod uid hex>);
links live only inside those namespaces and go with them, so their names stay short and
fixed (eth0, br0, one bridge port per node named after the node). Only labs use the `pn-`
prefix (tests use `pnt-`, benches `pnb-`), and `is_lab_netns` accepts only the roles
above, so tearing one lab down can never take a namespace that is not that lab's.

Address plan (api/defaults.py): underlay 198.18.0.0/24 (router .1, nodes .11, .12, ...;
IPv6 fd00:198:18::1 and fd00:198:18::11, ...), outside world 203.0.113.0/24 (router .1,
echo server .10; fd00:203:113::1 and ::10). With racks (`--racks N`), rack r is its own
L2 segment, 198.18.r.0/24 and fd00:198:18:r::/64 (bridge br<r> in the underlay netns),
routed by the lab router (.1 in every rack); node n<i> is in rack (i-1) mod N, host part
.10+i as ever, so n3 of a 2-rack lab is 198.18.0.13 and n2 is 198.18.1.12.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Sequence

from podnet.api import defaults

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
# Names whose `pn-<name>-` prefix tests and benches used before they moved to `pnt-`/`pnb-`:
# an older checkout's namespaces must never be taken for a lab's by `podnet down --force`.
RESERVED_NAMES = frozenset({"cni", "cnib", "svc", "pol", "dns", "ds", "test", "bench"})
ROLE_RE = re.compile(r"(ul|rt|out|n[1-9][0-9]*|p[0-9a-f]{1,10})")
MAX_NODES = 100
# A node is named n<i>: its netns, bridge port and underlay address (.10+i) derive from i,
# so a node added later (`podnet node add n7`) gets the address n7 always has; the /24
# underlay has room for i up to 244.
NODE_RE = re.compile(r"^n([1-9][0-9]{0,2})$")
MAX_NODE_INDEX = 244
MAX_RACKS = 8
# --encap: the default pools' vxlanMode (Calico's encapsulation: None, VXLAN, VXLANCrossSubnet)
ENCAPS = ("none", "vxlan", "crosssubnet")
VXLAN_MODES = {"none": "Never", "vxlan": "Always", "crosssubnet": "CrossSubnet"}
RACK_LABEL = "podnet.io/rack"
ROUTINGS = ("static", "bgp")
DATASTORES = ("sqlite", "etcd", "kubernetes")
# The outside world's echo server: HTTP on TCP 80, the same line on UDP 9000.
ECHO_TCP_PORT = 80
ECHO_UDP_PORT = 9000
# The outside world's DNS (dnsmasq on the echo address): an "internet" zone whose names
# resolve to the echo server; the nodes' resolver, so cluster DNS forwards there.
OUTSIDE_ZONE = "example.test"
OUTSIDE_HOSTS = ("echo", "www")


class TopologyError(ValueError):
    pass


@dataclass(frozen=True)
class NodeSpec:
    name: str  # the Kubernetes node name: n1, n2, ...
    netns: str  # pn-<lab>-n1
    ip4: str
    ip6: str | None
    bridge_port: str  # the veth end in the underlay netns
    zone: str = ""  # its topology.kubernetes.io/zone label ("": none)
    rack: int = 0  # its L2 segment (bridge br<rack>, subnet LabSpec.rack_net4(rack))

    @property
    def ips(self) -> list[str]:
        return [self.ip4] + ([self.ip6] if self.ip6 else [])


@dataclass(frozen=True)
class LabSpec:
    name: str
    nodes: tuple[NodeSpec, ...]
    dual_stack: bool = False
    encap: str = "none"
    datastore: str = "sqlite"
    zones: int = 0  # nodes spread round-robin over zones a, b, ... (0: no zone labels)
    routing: str = "static"  # "bgp": BIRD on every node and on the router (lab/tor.py)
    mtu: int = 1500
    racks: int = 1  # L2 underlay segments, routed by the router
    underlay4: str = defaults.UNDERLAY_V4
    underlay6: str = defaults.UNDERLAY_V6
    outside4: str = defaults.OUTSIDE_V4
    outside6: str = defaults.OUTSIDE_V6

    @property
    def prefix(self) -> str:
        return f"{defaults.LAB_PREFIX}{self.name}-"

    @property
    def underlay_netns(self) -> str:
        return self.prefix + "ul"

    @property
    def router_netns(self) -> str:
        return self.prefix + "rt"

    @property
    def outside_netns(self) -> str:
        return self.prefix + "out"

    @property
    def infra_netns(self) -> list[str]:
        return [self.underlay_netns, self.router_netns, self.outside_netns]

    @property
    def all_netns(self) -> list[str]:
        return self.infra_netns + [n.netns for n in self.nodes]

    def _host(self, cidr: str, index: int) -> str:
        return str(ipaddress.ip_network(cidr)[index])

    @property
    def router_ul4(self) -> str:
        return self._host(self.underlay4, 1)

    @property
    def router_ul6(self) -> str:
        return self._host(self.underlay6, 1)

    @property
    def router_out4(self) -> str:
        return self._host(self.outside4, 1)

    @property
    def router_out6(self) -> str:
        return self._host(self.outside6, 1)

    @property
    def echo4(self) -> str:
        return self._host(self.outside4, 10)

    @property
    def echo6(self) -> str:
        return self._host(self.outside6, 0x10)

    def rack_net4(self, rack: int) -> str:
        """Rack `rack`'s IPv4 subnet: the underlay's, moved up by `rack` of its own size."""
        return _nth_subnet(self.underlay4, rack)

    def rack_net6(self, rack: int) -> str:
        return _nth_subnet(self.underlay6, rack)

    def rack_router4(self, rack: int) -> str:
        """The router's address in the rack: the nodes' gateway and BGP peer."""
        return self._host(self.rack_net4(rack), 1)

    def rack_router6(self, rack: int) -> str:
        return self._host(self.rack_net6(rack), 1)

    def router_port(self, rack: int) -> tuple[str, str]:
        """The router's link into rack `rack` and its peer, the bridge port in the underlay
        netns: (eth0, rt) for the first rack (as a one-rack lab has it), (eth<r+1>, rt<r>)
        after it (eth1 is the outside world's)."""
        return ("eth0", "rt") if rack == 0 else (f"eth{rack + 1}", f"rt{rack}")

    @property
    def underlays4(self) -> list[str]:
        return [self.rack_net4(r) for r in range(self.racks)]

    @property
    def underlays6(self) -> list[str]:
        return [self.rack_net6(r) for r in range(self.racks)]

    @property
    def ul4_len(self) -> int:
        return ipaddress.ip_network(self.underlay4).prefixlen

    @property
    def ul6_len(self) -> int:
        return ipaddress.ip_network(self.underlay6).prefixlen

    @property
    def out4_len(self) -> int:
        return ipaddress.ip_network(self.outside4).prefixlen

    @property
    def out6_len(self) -> int:
        return ipaddress.ip_network(self.outside6).prefixlen

    def node_resolv_conf(self) -> str:
        """The nodes' /etc/resolv.conf: the outside world's DNS server."""
        return f"nameserver {self.echo4}\n" + (f"nameserver {self.echo6}\n" if self.dual_stack else "")

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise TopologyError(f"lab {self.name!r} has no node {name!r} "
                            f"(nodes: {', '.join(n.name for n in self.nodes)})")

    @property
    def control_plane(self) -> NodeSpec:
        """The first node: the kubelet, the API server and etcd live in its namespace."""
        return self.nodes[0]

    def with_node(self, name: str) -> "LabSpec":
        """This lab with node `name` added (kept in index order). Pure."""
        index = node_index(name)
        if any(n.name == name for n in self.nodes):
            raise TopologyError(f"lab {self.name!r} already has a node {name!r}")
        if len(self.nodes) >= MAX_NODES:
            raise TopologyError(f"lab {self.name!r} has {len(self.nodes)} nodes, the most a lab may have")
        nodes = self.nodes + (make_node(self.prefix, index, self.dual_stack, self.zones, self.racks),)
        return replace(self, nodes=tuple(sorted(nodes, key=lambda n: node_index(n.name))))

    def without_node(self, name: str) -> "LabSpec":
        """This lab with node `name` gone; the control-plane node stays. Pure."""
        node = self.node(name)
        if node == self.control_plane:
            raise TopologyError(f"node {name!r} is lab {self.name!r}'s control plane (its kubelet, "
                                f"API server and datastore run there): it cannot be deleted")
        return replace(self, nodes=tuple(n for n in self.nodes if n.name != name))

    def pod_netns(self, pod_uid: str) -> str:
        """A pod's netns: the lab prefix and 10 hex chars of its uid (short, unique enough,
        and derivable again from the pod alone)."""
        short = re.sub(r"[^0-9a-f]", "", pod_uid.lower())[:10] or "0"
        return f"{self.prefix}p{short}"


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise TopologyError(f"lab name {name!r}: use 1-10 lowercase letters or digits, "
                            f"starting with a letter (it prefixes every namespace: "
                            f"{defaults.LAB_PREFIX}<name>-n1)")
    if name in RESERVED_NAMES:
        raise TopologyError(f"lab name {name!r} is reserved: {defaults.LAB_PREFIX}{name}-* names "
                            f"belonged to tests or benchmarks; pick another name")
    return name


def is_lab_netns(lab: str, netns: str) -> bool:
    """Whether `netns` is one the lab `lab` may have created: its prefix and a known role."""
    prefix = f"{defaults.LAB_PREFIX}{lab}-"
    return netns.startswith(prefix) and ROLE_RE.fullmatch(netns[len(prefix):]) is not None


def _nth_subnet(cidr: str, n: int) -> str:
    net = ipaddress.ip_network(cidr)
    return str(ipaddress.ip_network((int(net.network_address) + n * net.num_addresses, net.prefixlen)))


def rack_name(rack: int) -> str:
    """Rack r's label value: a, b, ... (the nodes' podnet.io/rack label)."""
    return zone_name(rack)


def check_racks(racks: int, encap: str, routing: str) -> None:
    if not 1 <= racks <= MAX_RACKS:
        raise TopologyError(f"--racks {racks}: must be between 1 and {MAX_RACKS}")
    if racks > 1 and encap == "none" and routing != "bgp":
        # the router knows the racks' subnets but no pod block: a route to another rack's
        # block via its node is not on-link, and via the router it would be dropped there
        raise TopologyError(f"--racks {racks} with --encap none: pod blocks in another rack can only "
                            f"be reached if the router learns them: use --routing bgp, or --encap "
                            f"crosssubnet (VXLAN between racks only) or vxlan")


def node_index(name: str) -> int:
    """n<i> -> i; anything else is refused (the name derives the node's netns and address)."""
    m = NODE_RE.match(name or "")
    if not m or int(m.group(1)) > MAX_NODE_INDEX:
        raise TopologyError(f"node name {name!r}: lab nodes are named n1 ... n{MAX_NODE_INDEX} "
                            f"(n<i> gets the underlay address .{10}+i and the netns "
                            f"{defaults.LAB_PREFIX}<lab>-n<i>)")
    return int(m.group(1))


def make_node(prefix: str, index: int, dual_stack: bool, zones: int, racks: int = 1) -> NodeSpec:
    """Node n<index>: in rack (index-1) mod racks, at .10+index of that rack's subnet."""
    rack = (index - 1) % racks
    ul4 = ipaddress.ip_network(_nth_subnet(defaults.UNDERLAY_V4, rack))
    ul6 = ipaddress.ip_network(_nth_subnet(defaults.UNDERLAY_V6, rack))
    name = f"n{index}"
    # .11, .12, ... in v4; ::11, ::12, ... (the same digits, read as hex) in v6
    ip6 = str(ul6[int(str(10 + index), 16)]) if dual_stack else None
    zone = zone_name((index - 1) % zones) if zones else ""
    return NodeSpec(name, prefix + name, str(ul4[10 + index]), ip6, name, zone, rack)


def make_spec(name: str, nodes: int | Sequence[str] = 2, dual_stack: bool = False, encap: str = "none",
              datastore: str = "sqlite", zones: int = 0, routing: str = "static",
              racks: int = 1) -> LabSpec:
    """`nodes`: a count (`podnet up --nodes N`: n1 ... nN) or the node names themselves
    (a lab whose nodes came and went, as its lab.json keeps them)."""
    validate_name(name)
    check_racks(racks, encap, routing)
    names = [f"n{i}" for i in range(1, nodes + 1)] if isinstance(nodes, int) else list(nodes)
    if not 1 <= len(names) <= MAX_NODES:
        raise TopologyError(f"--nodes {len(names)}: must be between 1 and {MAX_NODES}")
    indexes = sorted(node_index(n) for n in names)
    if len(set(indexes)) != len(indexes):
        raise TopologyError(f"node names repeat: {', '.join(names)}")
    if not 0 <= zones <= (len(names) if isinstance(nodes, int) else MAX_NODES):
        raise TopologyError(f"--zones {zones}: must be between 0 and the number of nodes ({len(names)})")
    if encap not in ENCAPS:
        raise TopologyError(f"--encap {encap!r}: must be one of {', '.join(ENCAPS)}")
    if routing not in ROUTINGS:
        raise TopologyError(f"--routing {routing!r}: must be one of {', '.join(ROUTINGS)}")
    if datastore not in DATASTORES:
        raise TopologyError(f"--datastore {datastore!r}: must be one of {', '.join(DATASTORES)}")
    prefix = f"{defaults.LAB_PREFIX}{name}-"
    specs = tuple(make_node(prefix, i, dual_stack, zones, racks) for i in indexes)
    return LabSpec(name, specs, dual_stack, encap, datastore, zones, routing, racks=racks)


def zone_name(i: int) -> str:
    """Zone i's name: a, b, ..., z, then aa, ab, ... (n1 in a, n2 in b, ... round-robin)."""
    return (zone_name(i // 26 - 1) if i >= 26 else "") + chr(ord("a") + i % 26)


def spec_to_dict(spec: LabSpec) -> dict[str, object]:
    """What lab.json keeps: the node names (not a count: nodes come and go, `podnet node`)."""
    return {"name": spec.name, "nodes": [n.name for n in spec.nodes], "dualStack": spec.dual_stack,
            "encap": spec.encap, "datastore": spec.datastore, "zones": spec.zones,
            "routing": spec.routing, "racks": spec.racks}


def spec_from_dict(d: dict[str, object]) -> LabSpec:
    """A lab.json's spec. Labs saved before nodes could be added kept a count: it still
    means n1 ... nN."""
    raw = d.get("nodes", 2)
    nodes: int | list[str]
    if isinstance(raw, int) and not isinstance(raw, bool):
        nodes = raw
    elif isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        nodes = list(raw)
    else:
        raise TopologyError(f"lab {d.get('name')!r}: its saved spec has nodes {raw!r}, neither a count "
                            f"nor a list of node names; `podnet down --force` removes it")
    return make_spec(str(d["name"]), nodes,
                     bool(d.get("dualStack", False)), str(d.get("encap", "none")),
                     str(d.get("datastore", "sqlite")), int(str(d.get("zones", 0))),
                     str(d.get("routing", "static")), int(str(d.get("racks", 1))))
