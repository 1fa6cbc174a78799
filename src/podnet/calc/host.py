"""Host protection: what a pod may send to a node's own addresses (issue 12 §1). Pure.

Calico's host-endpoint / failsafe idea, for pods: from a pod, a node answers only what
pods need. Everything else a pod sends to any node's own address (its underlay address,
its pod-facing link-local address, the control-plane node's etcd) is refused.

What is allowed, whatever the port list says:
- replies and ICMP errors of connections the node opened (conntrack established/related):
  the kubelet's probes, `podnet serve`;
- a connection a Service's DNAT sent to a node (conntrack status dnat): a Service whose
  endpoint is a host-network address is a user's decision, as in Kubernetes (the
  `kubernetes` Service is one). A NodePort reached from a pod is DNATed to its endpoint
  before the filter sees it, so it is a Service like any other;
- ICMP echo (ping a node) and IPv6 neighbour discovery (a pod must resolve its gateway).

`POD_TO_HOST_PORTS` is the one list of node ports pods may reach; the renderer
(dataplane/nft/policy.py) takes it from `host_protection`. Add a port here, nowhere else.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.api.defaults import API_SERVER_PORT, NODE_PORT_RANGE
from podnet.calc.cidrs import collapse
from podnet.calc.model import ClusterState

# (protocol, port) a pod may open on any node. DNS: a node that serves the cluster's DNS
# (node-local DNS) answers on 53. The API server (on the control-plane node, 6443): pods
# reach it in-cluster as in Kubernetes, with a token or certificate it checks itself.
POD_TO_HOST_PORTS: tuple[tuple[str, int], ...] = (
    ("udp", 53), ("tcp", 53),
    ("tcp", API_SERVER_PORT),
)


@dataclass(frozen=True)
class HostProtection:
    ports: tuple[tuple[str, int], ...]
    pools: dict[int, tuple[str, ...]]  # family -> pod CIDRs (IP pools): packets from pods
    nodes: dict[int, tuple[str, ...]]  # family -> every node's own addresses (InternalIPs)

    def allows(self, proto: str, port: int | None) -> bool:
        return (proto.lower(), port) in self.ports

    def from_pod(self, addr: str) -> bool:
        """Is `addr` a pod's (inside an IP pool), as a node's input chain tells?"""
        a = ipaddress.ip_address(addr)
        return any(a in ipaddress.ip_network(c) for c in self.pools[a.version])

    def refuses(self, proto: str, port: int | None, *, dnat: bool, to_other_node: bool) -> str:
        """Why a pod's new connection to a node's address is refused, or "" when it
        passes: a Service's DNAT, an allowed port, or (to another node) a NodePort."""
        if dnat or self.allows(proto, port):
            return ""
        lo, hi = NODE_PORT_RANGE
        if to_other_node and port is not None and lo <= port <= hi:
            return ""
        return f"{port}/{proto} is not a port pods may reach on a node"


def host_protection(state: ClusterState,
                    ports: tuple[tuple[str, int], ...] = POD_TO_HOST_PORTS) -> HostProtection:
    pools = []
    for pool in state.ippools:
        if not pool.for_workloads:
            continue
        try:
            pools.append(pool.network)
        except ValueError:
            continue  # invalid CIDR: validation reports it; never crash the agent
    addrs: dict[int, set[str]] = {4: set(), 6: set()}
    for node in state.nodes:
        for a in node.internal_ips:
            try:
                ip = ipaddress.ip_address(a)
            except ValueError:
                continue
            addrs[ip.version].add(str(ip))
    return HostProtection(tuple(sorted(set(ports))), {f: collapse(pools, f) for f in (4, 6)},
                          {f: tuple(sorted(addrs[f])) for f in (4, 6)})
