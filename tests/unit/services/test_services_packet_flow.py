"""kube-proxy's packet-flow tables (pkg/proxy/nftables/proxier_test.go, runPacketFlowTests)
as a table-driven test of calc + the rendered rules: each row is one new connection
(source, destination, port) and what the node does with it (the endpoints it may reach,
masqueraded or not, DROP, REJECT), read by the tracer from the ruleset podnet renders.

Our own fixtures on podnet's address plan, with upstream's cases as the specification:
upstream's pods 10.0.0.0/8 are our 10.244.0.0/16 (this node's pods 10.244.1.x, another
node's 10.244.2.x), its node 192.168.0.2 our 198.18.0.11, its external client 203.0.113.2
our 203.0.113.5, its ClusterIPs 172.30.0.x our 10.96.0.x, NodePorts 300xx.
docs/design/services.md (Tests) names the upstream groups this file ports. Each group is
a function (`GROUPS`) so that tests/kernel/services/test_packet_flow_replay.py sends the
same rows as real packets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from podnet.calc.services import build_table
from podnet.dataplane.nft.services import render_full
from builders import endpoint, make_service, make_slice
from svc_nftsim import NftModel, trace

NODE = "node-1"
NODE_IP = "198.18.0.11"
NODE_IPS = (NODE_IP, "fd00:198:18::11")
POD = "10.244.1.99"  # a pod on this node, not an endpoint
EXTERNAL = "203.0.113.5"
POD_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")


@dataclass(frozen=True)
class Flow:
    name: str
    src: str
    dst: str
    port: int
    output: str  # "ip:port, ip:port" | "DROP" | "REJECT" | "" (not touched)
    masq: bool = False
    proto: str = "tcp"


Group = tuple[list[Any], list[Any], list[Flow]]  # Services, EndpointSlices, the flows


def run_flows(services: list[Any], slices: list[Any], flows: list[Flow]) -> None:
    model = NftModel()
    model.apply(render_full(build_table(services, slices, NODE_IPS, NODE, POD_CIDRS), None)[0])
    failures = []
    for f in flows:
        got, masq = outcome(model, f)
        if got != f.output or (masq != f.masq and got not in ("DROP", "REJECT", "")):
            failures.append(f"{f.name}: {f.src} -> {f.dst}:{f.port}/{f.proto}: expected "
                            f"{f.output!r} masq={f.masq}, got {got!r} masq={masq}")
    assert not failures, "\n".join(failures)


def outcome(model: NftModel, f: Flow) -> tuple[str, bool]:
    """Every endpoint some draw reaches (upstream's tracer follows every vmap branch)."""
    seen: dict[str, bool] = {}
    for i in range(64):
        v = trace(model, f.src, f.dst, f.proto, f.port, draw=lambda n, i=i: i % n)
        if v.action in ("drop", "reject"):
            return v.action.upper(), False
        if v.action == "none":
            return "", False
        seen[f"{v.ip}:{v.port}"] = v.masquerade
    masq = set(seen.values())
    assert len(masq) == 1, f"{f.name}: masquerade depends on the endpoint drawn: {seen}"
    return ", ".join(sorted(seen, key=_ip_key)), masq.pop()


def _ip_key(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.rsplit(":", 1)[0].split("."))


def svc(ns: str, name: str, ip: str, node_port: int = 0, **spec: Any) -> Any:
    def m(d: dict[str, Any]) -> None:
        d["spec"].update(spec)
        d["spec"]["ports"] = [{"name": "p80", "port": 80, "protocol": "TCP"}]
        if node_port:
            d["spec"].setdefault("type", "NodePort")
            d["spec"]["ports"][0]["nodePort"] = node_port
    return make_service(ns, name, m, ip=ip)


def eps(ns: str, name: str, *pairs: tuple[str, str], mutate: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """(ip, node) pairs; node "" = the slice names no node."""
    return make_slice(ns, name, [endpoint(ip, node=n) for ip, n in pairs], mutate,
                      ports=[{"name": "p80", "port": 80, "protocol": "TCP"}])


# ---- TestInternalExternalMasquerade (base case: a working local-traffic detector) ---------
def internal_external_masquerade() -> Group:
    services = [svc("ns1", "svc1", "10.96.0.41", 30001),
                svc("ns2", "svc2", "10.96.0.42", 30002, externalTrafficPolicy="Local"),
                svc("ns3", "svc3", "10.96.0.43", 30003, internalTrafficPolicy="Local")]
    slices = [eps("ns1", "svc1", ("10.244.1.1", NODE), ("10.244.2.1", "remote")),
              eps("ns2", "svc2", ("10.244.1.2", NODE), ("10.244.2.2", "remote")),
              eps("ns3", "svc3", ("10.244.1.3", NODE), ("10.244.2.3", "remote"))]
    both1, both2, both3 = (f"10.244.1.{i}:80, 10.244.2.{i}:80" for i in (1, 2, 3))
    return services, slices, [
        Flow("pod to ClusterIP", POD, "10.96.0.41", 80, both1, False),
        Flow("pod to NodePort", POD, NODE_IP, 30001, both1, True),
        Flow("node to ClusterIP", NODE_IP, "10.96.0.41", 80, both1, True),
        Flow("node to NodePort", NODE_IP, NODE_IP, 30001, both1, True),
        Flow("external to ClusterIP", EXTERNAL, "10.96.0.41", 80, both1, True),
        Flow("external to NodePort", EXTERNAL, NODE_IP, 30001, both1, True),
        Flow("pod to ClusterIP with eTP:Local", POD, "10.96.0.42", 80, both2, False),
        Flow("pod to NodePort with eTP:Local", POD, NODE_IP, 30002, both2, False),
        Flow("node to ClusterIP with eTP:Local", NODE_IP, "10.96.0.42", 80, both2, True),
        Flow("node to NodePort with eTP:Local", NODE_IP, NODE_IP, 30002, both2, True),
        Flow("external to ClusterIP with eTP:Local", EXTERNAL, "10.96.0.42", 80, both2, True),
        Flow("external to NodePort with eTP:Local", EXTERNAL, NODE_IP, 30002, "10.244.1.2:80", False),
        Flow("pod to ClusterIP with iTP:Local", POD, "10.96.0.43", 80, "10.244.1.3:80", False),
        Flow("pod to NodePort with iTP:Local", POD, NODE_IP, 30003, both3, True),
        Flow("node to ClusterIP with iTP:Local", NODE_IP, "10.96.0.43", 80, "10.244.1.3:80", True),
        Flow("node to NodePort with iTP:Local", NODE_IP, NODE_IP, 30003, both3, True),
        Flow("external to ClusterIP with iTP:Local", EXTERNAL, "10.96.0.43", 80, "10.244.1.3:80", True),
        Flow("external to NodePort with iTP:Local", EXTERNAL, NODE_IP, 30003, both3, True),
    ]


# ---- externalIPs (upstream's TestExternalIPsReject, TestExternalTrafficPolicy* on externalIPs) --
def external_ips() -> Group:
    """An external IP is an external destination: eTP Cluster masquerades every source,
    eTP Local keeps an outside client's address and sends it to this node's endpoints only,
    pods and the node itself are short-circuited to every endpoint; no endpoints: REJECT."""
    ext = {"externalIPs": ["192.0.2.61"]}
    services = [svc("ns1", "c", "10.96.0.61", **ext),
                svc("ns2", "l", "10.96.0.62", externalIPs=["192.0.2.62"], externalTrafficPolicy="Local"),
                svc("ns3", "none", "10.96.0.63", externalIPs=["192.0.2.63"], externalTrafficPolicy="Local"),
                svc("ns4", "empty", "10.96.0.64", externalIPs=["192.0.2.64"]),
                svc("ns5", "np", "10.96.0.65", 30065, externalIPs=["192.0.2.65"], externalTrafficPolicy="Local")]
    slices = [eps("ns1", "c", ("10.244.1.1", NODE), ("10.244.2.1", "remote")),
              eps("ns2", "l", ("10.244.1.2", NODE), ("10.244.2.2", "remote")),
              eps("ns3", "none", ("10.244.2.3", "remote")),
              eps("ns4", "empty"),
              eps("ns5", "np", ("10.244.1.5", NODE), ("10.244.2.5", "remote"))]
    both1, both2, both5 = (f"10.244.1.{i}:80, 10.244.2.{i}:80" for i in (1, 2, 5))
    return services, slices, [
        Flow("pod to external IP", POD, "192.0.2.61", 80, both1, True),
        Flow("node to external IP", NODE_IP, "192.0.2.61", 80, both1, True),
        Flow("external to external IP", EXTERNAL, "192.0.2.61", 80, both1, True),
        Flow("external to external IP, another port", EXTERNAL, "192.0.2.61", 81, ""),
        Flow("external to external IP, UDP", EXTERNAL, "192.0.2.61", 80, "", proto="udp"),
        Flow("pod to ClusterIP of a Service with an external IP", POD, "10.96.0.61", 80, both1, False),
        Flow("pod to external IP with eTP:Local", POD, "192.0.2.62", 80, both2, False),
        Flow("node to external IP with eTP:Local", NODE_IP, "192.0.2.62", 80, both2, True),
        Flow("external to external IP with eTP:Local", EXTERNAL, "192.0.2.62", 80, "10.244.1.2:80", False),
        Flow("external to ClusterIP with eTP:Local", EXTERNAL, "10.96.0.62", 80, both2, True),
        Flow("external to external IP, eTP:Local, no local endpoint", EXTERNAL, "192.0.2.63", 80, "DROP"),
        Flow("pod to external IP, eTP:Local, no local endpoint", POD, "192.0.2.63", 80, "DROP"),
        Flow("pod to ClusterIP, eTP:Local, no local endpoint", POD, "10.96.0.63", 80, "10.244.2.3:80", False),
        Flow("external to external IP without endpoints", EXTERNAL, "192.0.2.64", 80, "REJECT"),
        Flow("pod to external IP without endpoints", POD, "192.0.2.64", 80, "REJECT"),
        Flow("external to external IP of a NodePort with eTP:Local", EXTERNAL, "192.0.2.65", 80,
             "10.244.1.5:80", False),
        Flow("external to its NodePort", EXTERNAL, NODE_IP, 30065, "10.244.1.5:80", False),
        Flow("external to the external IP on the nodePort", EXTERNAL, "192.0.2.65", 30065, ""),
    ]


# ---- type LoadBalancer (upstream's TestLoadBalancer, TestOnlyLocalLoadBalancing, source ranges) --
def lb(ns: str, name: str, ip: str, ingress: list[str], node_port: int = 0, **spec: Any) -> Any:
    s = svc(ns, name, ip, node_port, type="LoadBalancer", **spec)
    s.raw["status"] = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}
    return s


def load_balancer_ingress_ips() -> Group:
    """An ingress IP is an external destination, as an external IP is; source ranges
    let only their sources in (others dropped, pods and the node included, as kube-proxy's
    firewall chain does); an ingress with ipMode Proxy is the balancer's, not the node's."""
    services = [lb("ns1", "c", "10.96.0.71", ["198.51.100.71"], 30071),
                lb("ns2", "l", "10.96.0.72", ["198.51.100.72"], 30072, externalTrafficPolicy="Local"),
                lb("ns3", "fw", "10.96.0.73", ["198.51.100.73"], 30073,
                   loadBalancerSourceRanges=["203.0.113.0/25", "10.244.1.0/24"]),
                lb("ns4", "fwl", "10.96.0.74", ["198.51.100.74"], externalTrafficPolicy="Local",
                   loadBalancerSourceRanges=["203.0.113.0/28"], allocateLoadBalancerNodePorts=False),
                lb("ns5", "proxy", "10.96.0.75", []),
                lb("ns6", "empty", "10.96.0.76", ["198.51.100.76"]),
                lb("ns7", "v6only", "10.96.0.77", ["198.51.100.77"], loadBalancerSourceRanges=["2001:db8::/64"])]
    services[4].raw["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.75", "ipMode": "Proxy"}]}}
    slices = [eps(f"ns{i}", n, (f"10.244.1.{70 + i}", NODE), (f"10.244.2.{70 + i}", "remote"))
              for i, n in ((1, "c"), (2, "l"), (3, "fw"), (4, "fwl"), (5, "proxy"), (7, "v6only"))]
    slices.append(eps("ns6", "empty"))
    both = {i: f"10.244.1.{70 + i}:80, 10.244.2.{70 + i}:80" for i in range(1, 8)}
    return services, slices, [
        Flow("external to LB IP", EXTERNAL, "198.51.100.71", 80, both[1], True),
        Flow("pod to LB IP", POD, "198.51.100.71", 80, both[1], True),
        Flow("node to LB IP", NODE_IP, "198.51.100.71", 80, both[1], True),
        Flow("external to LB IP, another port", EXTERNAL, "198.51.100.71", 81, ""),
        Flow("external to LB's NodePort", EXTERNAL, NODE_IP, 30071, both[1], True),
        Flow("external to LB IP with eTP:Local", EXTERNAL, "198.51.100.72", 80, "10.244.1.72:80", False),
        Flow("pod to LB IP with eTP:Local", POD, "198.51.100.72", 80, both[2], False),
        Flow("node to LB IP with eTP:Local", NODE_IP, "198.51.100.72", 80, both[2], True),
        Flow("allowed external to LB IP with source ranges", EXTERNAL, "198.51.100.73", 80, both[3], True),
        Flow("other external to LB IP with source ranges", "203.0.113.200", "198.51.100.73", 80, "DROP"),
        Flow("allowed pod to LB IP with source ranges", POD, "198.51.100.73", 80, both[3], True),
        Flow("node to LB IP with source ranges", NODE_IP, "198.51.100.73", 80, "DROP"),
        Flow("other external to the NodePort of an LB with source ranges", "203.0.113.200", NODE_IP, 30073,
             both[3], True),
        Flow("external to ClusterIP of an LB with source ranges", "203.0.113.200", "10.96.0.73", 80, both[3], True),
        Flow("allowed external, eTP:Local and source ranges", EXTERNAL, "198.51.100.74", 80, "10.244.1.74:80", False),
        Flow("other external, eTP:Local and source ranges", "203.0.113.99", "198.51.100.74", 80, "DROP"),
        Flow("pod, eTP:Local and source ranges it is not in", POD, "198.51.100.74", 80, "DROP"),
        Flow("ingress with ipMode Proxy", EXTERNAL, "198.51.100.75", 80, ""),
        Flow("external to LB IP without endpoints", EXTERNAL, "198.51.100.76", 80, "REJECT"),
        Flow("IPv4 client, only IPv6 ranges", EXTERNAL, "198.51.100.77", 80, "DROP"),
    ]


GROUPS = [internal_external_masquerade, external_ips, load_balancer_ingress_ips]


@pytest.mark.parametrize("group", GROUPS, ids=[g.__name__ for g in GROUPS])
def test_packet_flows(group):
    run_flows(*group())
