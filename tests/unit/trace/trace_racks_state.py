"""A lab of two racks as a fixed, hand-built cluster state (what `podnet up --racks 2
--routing bgp --encap crosssubnet --dual-stack --nodes 3` and the pods below give):
n1 and n3 in rack a (198.18.0.0/24), n2 in rack b (198.18.1.0/24), the lab router .1 in
each. The default pools are CrossSubnet; `routed` (10.246.0.0/24) is vxlanMode Never, so
BIRD routes it. Each agent has published its addresses with their prefix length."""
from __future__ import annotations

from podnet.api.objects import Resource, from_dict
from podnet.calc.model import ClusterState
from podnet.trace.facts import LabFacts, NodeFacts, RackFacts

LAB = "rk"
NODES = {"n1": ("198.18.0.11", "fd00:198:18::11", 0), "n2": ("198.18.1.12", "fd00:198:18:1::12", 1),
         "n3": ("198.18.0.13", "fd00:198:18::13", 0)}
# name, node, ipv4, ipv6 (None: the routed pool has no IPv6 half)
PODS = [("p1", "n1", "10.244.0.2", "fd00:10:244::2"), ("p2", "n2", "10.244.0.66", "fd00:10:244::42"),
        ("p3", "n3", "10.244.0.130", "fd00:10:244::82"), ("q1", "n1", "10.246.0.2", None),
        ("q2", "n2", "10.246.0.18", None)]
BLOCKS = [("10.244.0.0/26", "n1"), ("10.244.0.64/26", "n2"), ("10.244.0.128/26", "n3"),
          ("fd00:10:244::/122", "n1"), ("fd00:10:244::40/122", "n2"), ("fd00:10:244::80/122", "n3"),
          ("10.246.0.0/28", "n1"), ("10.246.0.16/28", "n2")]


def _uid(i: int) -> str:
    return f"{i:08x}-5b1c-4d2e-8f3a-0000000{i:05x}"


def _pod(i: int, name: str, node: str, ip4: str, ip6: str | None) -> Resource:
    ips = [ip4] + ([ip6] if ip6 else [])
    return from_dict({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": "default", "uid": _uid(i), "labels": {"app": name},
                                   "annotations": {"podnet.io/netns": f"pn-{LAB}-p{_uid(i).replace('-', '')[:10]}"}},
                      "spec": {"nodeName": node, "containers": [{"name": "srv", "image": "podnet/serve",
                                                                  "ports": [{"containerPort": 9090}]}]},
                      "status": {"phase": "Running", "podIP": ip4, "podIPs": [{"ip": ip} for ip in ips],
                                 "hostIP": NODES[node][0], "conditions": [{"type": "Ready", "status": "True"}]}})


def _node(name: str) -> Resource:
    ip4, ip6, rack = NODES[name]
    return from_dict({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": name, "labels": {"podnet.io/rack": "ab"[rack]}},
                      "status": {"addresses": [{"type": "InternalIP", "address": ip4},
                                               {"type": "InternalIP", "address": ip6}],
                                 "podnet": {"ipv4Address": f"{ip4}/24", "ipv6Address": f"{ip6}/64"}}})


def _pool(name: str, cidr: str, block: int, mode: str) -> Resource:
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                      "spec": {"cidr": cidr, "blockSize": block, "natOutgoing": True, "vxlanMode": mode}})


def _block(cidr: str, node: str) -> Resource:
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "IPAMBlock",
                      "metadata": {"name": cidr.replace("/", "-").replace(":", "-")},
                      "spec": {"cidr": cidr, "affinity": f"host:{node}", "allocations": {}}})


def state() -> ClusterState:
    objs = [from_dict({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}})]
    objs += [_node(n) for n in NODES]
    objs += [_pool("default-ipv4-ippool", "10.244.0.0/16", 26, "CrossSubnet"),
             _pool("default-ipv6-ippool", "fd00:10:244::/56", 122, "CrossSubnet"),
             _pool("routed", "10.246.0.0/24", 28, "Never")]
    objs += [_block(c, n) for c, n in BLOCKS]
    objs += [_pod(i, *p) for i, p in enumerate(PODS, 1)]
    return ClusterState.from_objects(objs)


def facts() -> LabFacts:
    p = f"pn-{LAB}-"
    racks = (RackFacts(0, "198.18.0.0/24", "fd00:198:18::/64", "198.18.0.1", "fd00:198:18::1", "eth0", "rt", "br0"),
             RackFacts(1, "198.18.1.0/24", "fd00:198:18:1::/64", "198.18.1.1", "fd00:198:18:1::1", "eth2", "rt1",
                       "br1"))
    nodes = tuple(NodeFacts(n, p + n, ip4, ip6, rack) for n, (ip4, ip6, rack) in NODES.items())
    return LabFacts(LAB, nodes, "crosssubnet", p + "ul", p + "rt", p + "out", routing="bgp", racks=racks)
