"""spec.externalIPs and LoadBalancer ingress IPs on a real kernel (issue 16 §2): the outside world routes the external
IP to the node, and the node load-balances it as kube-proxy does an "external"
destination: eTP Cluster masquerades every client, eTP Local keeps an outside client's
address and reaches only this node's endpoints, pods and the node itself reach every
endpoint; a Service without endpoints refuses, one without a local endpoint drops."""
from __future__ import annotations

from collections import Counter

import pytest

from builders import endpoint, make_service, make_slice
from svc_topo import NODE_IP4, NODE_IP6, OUT_IP4, OUT_IP6, sh

pytestmark = pytest.mark.root

B = {"b1": ("10.244.1.11", "fd00:10:244:1::b"), "b2": ("10.244.1.12", "fd00:10:244:1::c"),
     "b3": ("10.244.1.13", "fd00:10:244:1::d")}
CLIENT = "10.244.1.2"
EXT4, EXT6, LB4 = "192.0.2.0/24", "2001:db8:5::/64", "198.51.100.0/24"


@pytest.fixture
def routed(topo):
    """The outside world sends the external addresses to the node, as a router would."""
    out = topo.ns("out")
    sh("ip", "-n", out, "route", "add", EXT4, "via", NODE_IP4)
    sh("ip", "-n", out, "-6", "route", "add", EXT6, "via", NODE_IP6)
    sh("ip", "-n", out, "route", "add", LB4, "via", NODE_IP4)
    try:
        yield topo
    finally:
        sh("ip", "-n", out, "route", "del", EXT4, check=False)
        sh("ip", "-n", out, "-6", "route", "del", EXT6, check=False)
        sh("ip", "-n", out, "route", "del", LB4, check=False)


def names(answers):
    return Counter(a.split()[0] for a in answers)


def sources(answers):
    return {a.split()[1] for a in answers}


def ext_svc(name, ip, ext, policy="Cluster", **spec):
    def m(d):
        d["spec"].update(externalIPs=ext, externalTrafficPolicy=policy, **spec)
    return make_service("default", name, m, ip=ip)


def on_nodes(backends, fam=0):
    return [endpoint(B[b][fam], node=n) for b, n in backends.items()]


def test_external_ip_cluster_policy_reaches_every_endpoint_masqueraded(routed, proxy):
    topo = routed
    proxy.put(ext_svc("ext", "10.96.0.60", ["192.0.2.60"]),
              make_slice("default", "ext", on_nodes({"b1": "node-1", "b2": "node-2"})))
    proxy.sync(full=True)
    from_out = topo.answers("out", "192.0.2.60", 80, n=40)
    assert set(names(from_out)) == {"b1", "b2"} and sources(from_out) == {NODE_IP4}
    from_pod = topo.answers("client", "192.0.2.60", 80, n=40)
    assert set(names(from_pod)) == {"b1", "b2"} and CLIENT not in sources(from_pod)
    assert set(names(topo.connect(topo.node, "192.0.2.60", 80, n=30)["answers"])) == {"b1", "b2"}
    # only the Service's port: another port of the external IP is not the Service's
    assert not set(names(topo.connect(topo.ns("out"), "192.0.2.60", 81, timeout=0.5)["answers"])) & {"b1", "b2"}
    # the external IP goes away (a partial sync): no more DNAT for it
    proxy.put(ext_svc("ext", "10.96.0.60", ["192.0.2.61"]))
    proxy.sync()
    assert topo.connect(topo.ns("out"), "192.0.2.60", 80, timeout=0.5)["answers"] == ["timeout"]
    assert set(names(topo.answers("out", "192.0.2.61", 80, n=20))) == {"b1", "b2"}


def test_external_ip_local_policy_keeps_the_outside_client_address(routed, proxy):
    topo = routed
    proxy.put(ext_svc("etp", "10.96.0.62", ["192.0.2.62"], "Local"),
              make_slice("default", "etp", on_nodes({"b1": "node-1", "b2": "node-2"})),
              ext_svc("away", "10.96.0.63", ["192.0.2.63"], "Local"),
              make_slice("default", "away", on_nodes({"b2": "node-2"})),
              ext_svc("empty", "10.96.0.64", ["192.0.2.64"]),
              make_slice("default", "empty", []))
    proxy.sync(full=True)
    assert topo.answers("out", "192.0.2.62", 80, n=20) == [f"b1 {OUT_IP4}"] * 20
    from_pod = topo.answers("client", "192.0.2.62", 80, n=40)
    assert set(names(from_pod)) == {"b1", "b2"} and sources(from_pod) == {CLIENT}
    from_node = topo.connect(topo.node, "192.0.2.62", 80, n=30)["answers"]
    assert set(names(from_node)) == {"b1", "b2"}
    # endpoints, none here: dropped (a timeout); no endpoints at all: refused at once
    assert topo.connect(topo.ns("out"), "192.0.2.63", 80, timeout=0.5)["answers"] == ["timeout"]
    assert topo.connect(topo.ns("out"), "192.0.2.64", 80, timeout=2)["answers"] == ["refused"]
    assert topo.connect(topo.ns("client"), "192.0.2.64", 80, timeout=2)["answers"] == ["refused"]


def test_ipv6_external_ip(routed, proxy):
    topo = routed
    def m(d):
        d["spec"].update(clusterIPs=["fd00:10:96::65"], ipFamilies=["IPv6"],
                         externalIPs=["2001:db8:5::65", "192.0.2.65"], externalTrafficPolicy="Local")
    proxy.put(make_service("default", "ext6", m, ip="fd00:10:96::65"),
              make_slice("default", "ext6", on_nodes({"b3": "node-1", "b2": "node-2"}, 1), family="IPv6"))
    proxy.sync(full=True)
    assert topo.answers("out", "2001:db8:5::65", 80, n=10) == [f"b3 {OUT_IP6}"] * 10
    # an IPv4 external IP of an IPv6-only Service is nothing (kube-proxy ignores it)
    assert topo.connect(topo.ns("out"), "192.0.2.65", 80, timeout=0.5)["answers"] == ["timeout"]


def test_udp_flow_to_an_external_ip_moves_when_its_endpoint_leaves(routed, proxy):
    topo = routed
    port = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]
    sl_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]

    def m(d):
        d["spec"]["externalIPs"] = ["192.0.2.66"]
    proxy.put(make_service("default", "dns-ext", m, ip="10.96.0.66", ports=port),
              make_slice("default", "dns-ext", [endpoint(B["b2"][0])], ports=sl_ports))
    proxy.sync(full=True)
    ask = lambda n: topo.answers("out", "192.0.2.66", 53, proto="udp", n=n, sport=40066)  # noqa: E731
    assert set(names(ask(3))) == {"b2"}
    proxy.put(make_slice("default", "dns-ext", [endpoint(B["b3"][0])], ports=sl_ports))
    proxy.sync()
    assert set(names(ask(2))) == {"b3"}


def lb_svc(name, ip, ingress, policy="Cluster", **spec):
    def m(d):
        d["spec"].update(type="LoadBalancer", externalTrafficPolicy=policy, allocateLoadBalancerNodePorts=False,
                         **spec)
        d["status"] = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}
    return make_service("default", name, m, ip=ip)


def test_load_balancer_ip_with_source_ranges_and_local_policy(routed, proxy):
    """The LB IP answers like an external IP; loadBalancerSourceRanges lets only its
    sources in (the outside client here), others are dropped (the pod times out)."""
    topo = routed
    proxy.put(lb_svc("lb", "10.96.0.70", ["198.51.100.70"]),
              make_slice("default", "lb", on_nodes({"b1": "node-1", "b2": "node-2"})),
              lb_svc("lbfw", "10.96.0.71", ["198.51.100.71"], "Local",
                     loadBalancerSourceRanges=[f"{OUT_IP4}/32"]),
              make_slice("default", "lbfw", on_nodes({"b1": "node-1", "b3": "node-2"})))
    proxy.sync(full=True)
    from_out = topo.answers("out", "198.51.100.70", 80, n=30)
    assert set(names(from_out)) == {"b1", "b2"} and sources(from_out) == {NODE_IP4}
    assert topo.answers("out", "198.51.100.71", 80, n=10) == [f"b1 {OUT_IP4}"] * 10
    assert topo.connect(topo.ns("client"), "198.51.100.71", 80, timeout=0.5)["answers"] == ["timeout"]
    # the ClusterIP is not behind the firewall
    assert set(names(topo.answers("client", "10.96.0.71", 80, n=20))) == {"b1", "b3"}
    # the range changes (a partial sync): the outside client is now the one dropped
    proxy.put(lb_svc("lbfw", "10.96.0.71", ["198.51.100.71"], "Local", loadBalancerSourceRanges=[f"{CLIENT}/32"]))
    proxy.sync()
    assert topo.connect(topo.ns("out"), "198.51.100.71", 80, timeout=0.5)["answers"] == ["timeout"]
    assert set(names(topo.answers("client", "198.51.100.71", 80, n=20))) == {"b1", "b3"}


def test_udp_flow_to_a_removed_external_ip_is_forgotten(routed, proxy):
    """kube-proxy clears a deleted service address's UDP flows: the client that kept its
    source port must not keep reaching the endpoint through an address the Service dropped."""
    topo = routed
    port = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]
    sl_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]

    def m(ips):
        return lambda d: d["spec"].update(externalIPs=ips)
    proxy.put(make_service("default", "dns-gone", m(["192.0.2.67"]), ip="10.96.0.67", ports=port),
              make_slice("default", "dns-gone", [endpoint(B["b2"][0])], ports=sl_ports))
    proxy.sync(full=True)
    ask = lambda: topo.connect(topo.ns("out"), "192.0.2.67", 53, "udp", 1, timeout=0.5, sport=40067)["answers"]  # noqa: E731
    assert set(names(ask())) == {"b2"}
    proxy.put(make_service("default", "dns-gone", m([]), ip="10.96.0.67", ports=port))
    proxy.sync()
    assert not set(names(ask())) & {"b1", "b2", "b3"}
