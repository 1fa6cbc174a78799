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

from podnet.api.defaults import API_SERVER_PORT
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


def _collapse(nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network], fam: int) -> tuple[str, ...]:
    return tuple(str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == fam))


def host_protection(state: ClusterState,
                    ports: tuple[tuple[str, int], ...] = POD_TO_HOST_PORTS) -> HostProtection:
    pools = []
    for pool in state.ippools:
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
    return HostProtection(tuple(sorted(set(ports))), {f: _collapse(pools, f) for f in (4, 6)},
                          {f: tuple(sorted(addrs[f])) for f in (4, 6)})
