"""The service proxy on a real kernel: real packets from client, backend and 'outside'
namespaces through the node's `inet podnet-svc` table (see svc_topo for the wiring)."""
from __future__ import annotations

import socket
from collections import Counter

import pytest

from builders import endpoint, make_service, make_slice
from svc_topo import NODE_IP4, NODE_IP6, OUT_IP4, OUT_IP6, sh

pytestmark = pytest.mark.root

B = {"b1": ("10.244.1.11", "fd00:10:244:1::b"), "b2": ("10.244.1.12", "fd00:10:244:1::c"),
     "b3": ("10.244.1.13", "fd00:10:244:1::d")}
CLIENT = "10.244.1.2"
UDP_PORT = [{"name": "dns", "port": 53, "protocol": "UDP"}]


def web(proxy, backends=("b1", "b2", "b3"), name="web", ip="10.96.0.20", mutate=None):
    svc = make_service("default", name, mutate, ip=ip)
    sl = make_slice("default", name, [endpoint(B[b][0]) for b in backends])
    proxy.put(svc, sl)
    return svc, sl


def names(answers):
    return Counter(a.split()[0] for a in answers)


def test_vip_reaches_every_endpoint_uniformly_with_client_ip_kept(topo, proxy):
    web(proxy)
    proxy.sync(full=True)
    answers = topo.answers("client", "10.96.0.20", 80, n=300)
    got = names(answers)
    assert set(got) == {"b1", "b2", "b3"}, got
    # 100 expected each; binomial sd ~8.2, so 60..140 is a ~5 sd bound
    assert all(60 <= c <= 140 for c in got.values()), got
    assert {a.split()[1] for a in answers} == {CLIENT}


def test_from_the_node_itself(topo, proxy):
    web(proxy)
    proxy.sync(full=True)
    assert set(names(topo.connect(topo.node, "10.96.0.20", 80, n=30)["answers"])) <= {"b1", "b2", "b3"}


def test_session_affinity_sticks(topo, proxy):
    web(proxy, mutate=lambda d: d["spec"].update(sessionAffinity="ClientIP"))
    proxy.sync(full=True)
    assert len(names(topo.answers("client", "10.96.0.20", 80, n=30))) == 1
    # a periodic full resync keeps the affinity the kernel learned
    first = names(topo.answers("client", "10.96.0.20", 80))
    proxy.sync(full=True)
    assert names(topo.answers("client", "10.96.0.20", 80, n=10)).keys() == first.keys()


def test_no_endpoints_is_refused_at_once_tcp_and_udp(topo, proxy):
    proxy.put(make_service("default", "empty", ip="10.96.0.23"),
              make_service("default", "empty-udp", ip="10.96.0.24", ports=UDP_PORT))
    proxy.sync(full=True)
    assert topo.answers("client", "10.96.0.23", 80) == ["refused"]
    assert topo.answers("client", "10.96.0.24", 53, proto="udp") == ["refused"]
    # a port the Service does not have is refused too, from a pod and from the node
    assert topo.answers("client", "10.96.0.24", 54, proto="udp") == ["refused"]
    assert topo.connect(topo.node, "10.96.0.23", 81)["answers"] == ["refused"]


def test_endpoint_change_is_a_partial_sync_and_takes_effect(topo, proxy):
    svc, sl = web(proxy)
    proxy.sync(full=True)
    proxy.put(make_slice("default", "web", [endpoint(B["b3"][0])]))
    text = proxy.sync()
    assert "flush table" not in text and "delete element" in text
    assert names(topo.answers("client", "10.96.0.20", 80, n=20)) == {"b3": 20}
    proxy.remove(svc)
    proxy.sync()
    assert topo.answers("client", "10.96.0.20", 80, n=1) != ["b3 " + CLIENT]
    assert proxy.role.partial_syncs == 2


def test_nodeport_from_outside_is_masqueraded(topo, proxy):
    def np(d):
        d["spec"]["type"] = "NodePort"
        d["spec"]["ports"][0]["nodePort"] = 30080
    web(proxy, mutate=np)
    proxy.put(make_service("default", "np-empty", lambda d: (d["spec"].update(type="NodePort"),
              d["spec"]["ports"][0].update(nodePort=30081)), ip="10.96.0.25"))
    proxy.sync(full=True)
    answers = topo.answers("out", NODE_IP4, 30080, n=20)
    assert set(names(answers)) <= {"b1", "b2", "b3"} and len(answers) == 20
    assert {a.split()[1] for a in answers} != {OUT_IP4}  # replies must come back via the node
    assert topo.answers("out", NODE_IP4, 30081) == ["refused"]


def test_hairpin_pod_reaches_itself_through_its_service(topo, proxy):
    web(proxy, backends=("b1",), name="self", ip="10.96.0.26")
    proxy.sync(full=True)
    (answer,) = topo.answers("b1", "10.96.0.26", 80)
    who, seen = answer.split()
    assert who == "b1" and seen != B["b1"][0]  # masqueraded, or the reply would never match


def test_ipv6_vip(topo, proxy):
    svc = make_service("default", "v6", ip="fd00:10:96::20")
    sl = make_slice("default", "v6", [endpoint(B[b][1]) for b in ("b1", "b2")], family="IPv6")
    proxy.put(svc, sl)
    proxy.sync(full=True)
    got = names(topo.answers("client", "fd00:10:96::20", 80, n=40))
    assert set(got) == {"b1", "b2"}, got


def test_udp_service(topo, proxy):
    proxy.put(make_service("kube-system", "dns", ip="10.96.0.10",
                           ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]),
              make_slice("kube-system", "dns", [endpoint(B["b2"][0])],
                         ports=[{"name": "dns", "port": 5353, "protocol": "UDP"}]))
    proxy.sync(full=True)
    assert topo.answers("client", "10.96.0.10", 53, proto="udp") == [f"b2 {CLIENT}"]


def _sctp_available() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _sctp_available(), reason="this kernel has no SCTP: socket() fails with "
                    "'Protocol not supported' (the rules are covered by tests/golden/services)")
def test_sctp_service(topo, proxy):
    proxy.put(make_service("default", "sctp", ip="10.96.0.27",
                           ports=[{"name": "s", "port": 9999, "protocol": "SCTP", "targetPort": 8080}]),
              make_slice("default", "sctp", [endpoint(B["b1"][0])],
                         ports=[{"name": "s", "port": 8080, "protocol": "SCTP"}]))
    proxy.sync(full=True)
    topo.start_backend("b1", tcp="", udp="", sctp="8080")
    assert topo.answers("client", "10.96.0.27", 9999, proto="sctp") == [f"b1 {CLIENT}"]


def test_sctp_rules_load_into_the_kernel(topo, proxy):
    proxy.put(make_service("default", "sctp", ip="10.96.0.27",
                           ports=[{"name": "s", "port": 9999, "protocol": "SCTP", "targetPort": 8080}]),
              make_slice("default", "sctp", [endpoint(B["b1"][0])],
                         ports=[{"name": "s", "port": 8080, "protocol": "SCTP"}]))
    proxy.sync(full=True)
    listing = topo.run(topo.node, "nft", "list", "map", "inet", "podnet-svc", "svc4")
    assert "10.96.0.27 . sctp . 9999" in listing


def test_udp_flow_moves_when_its_endpoint_leaves(topo, proxy):
    port = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]
    sl_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    proxy.put(make_service("kube-system", "dns", ip="10.96.0.10", ports=port),
              make_slice("kube-system", "dns", [endpoint(B["b2"][0])], ports=sl_ports))
    proxy.sync(full=True)
    # one client port: the same conntrack flow for every datagram
    assert topo.answers("client", "10.96.0.10", 53, proto="udp", n=3, sport=40053) == [f"b2 {CLIENT}"] * 3
    proxy.put(make_slice("kube-system", "dns", [endpoint(B["b3"][0])], ports=sl_ports))
    proxy.sync()
    # b2 still answers on its own address; only deleting the flow sends the client to b3
    assert topo.answers("client", "10.96.0.10", 53, proto="udp", n=2, sport=40053) == [f"b3 {CLIENT}"] * 2


def test_session_reports_a_refused_transaction_and_stays_usable(topo, proxy):
    from podnet.dataplane.nft.runner import NftError
    web(proxy)
    proxy.sync(full=True)
    pid = proxy.session.pid
    with pytest.raises(NftError, match="podnet-svc"):
        proxy.session.apply("delete element inet podnet-svc ep4 { 0x5fff0fff }\n")
    # the kernel kept the old ruleset whole, and the same helper process goes on
    assert set(names(topo.answers("client", "10.96.0.20", 80, n=12))) <= {"b1", "b2", "b3"}
    proxy.session.apply("add element inet podnet-svc nodeips4 { 198.18.0.99 }\n")
    assert proxy.session.pid == pid


def test_ipv6_nodeport_from_outside(topo, proxy):
    def np(d):
        d["spec"].update(type="NodePort", clusterIPs=["fd00:10:96::21"], ipFamilies=["IPv6"])
        d["spec"]["ports"][0]["nodePort"] = 30086
    proxy.put(make_service("default", "np6", np, ip="fd00:10:96::21"),
              make_slice("default", "np6", [endpoint(B["b2"][1])], family="IPv6"))
    proxy.sync(full=True)
    (answer,) = topo.answers("out", NODE_IP6, 30086)
    who, seen = answer.split()
    assert who == "b2" and seen == NODE_IP6  # masqueraded to the node's address


# ---- traffic policies: this node is node-1; b2 and b3 are said to be on node-2 ------------
def _on_nodes(backends: dict[str, str], fam: int = 0) -> list[dict]:
    return [endpoint(B[b][fam], node=n) for b, n in backends.items()]


def _policy(internal="Cluster", external="Cluster", node_port=0):
    def m(d):
        d["spec"].update(internalTrafficPolicy=internal, externalTrafficPolicy=external)
        if node_port:
            d["spec"]["type"] = "NodePort"
            d["spec"]["ports"][0]["nodePort"] = node_port
    return m


def test_internal_traffic_policy_local_uses_this_nodes_endpoints_and_drops_without_one(topo, proxy):
    proxy.put(make_service("default", "itp", _policy("Local"), ip="10.96.0.40"),
              make_slice("default", "itp", _on_nodes({"b1": "node-1", "b2": "node-2", "b3": "node-2"})),
              make_service("default", "itp-away", _policy("Local"), ip="10.96.0.41"),
              make_slice("default", "itp-away", _on_nodes({"b2": "node-2"})))
    proxy.sync(full=True)
    assert topo.answers("client", "10.96.0.40", 80, n=20) == [f"b1 {CLIENT}"] * 20
    assert set(names(topo.connect(topo.node, "10.96.0.40", 80, n=10)["answers"])) == {"b1"}
    # endpoints, but none on this node: dropped (a timeout), not refused
    assert topo.connect(topo.ns("client"), "10.96.0.41", 80, timeout=0.5)["answers"] == ["timeout"]
    # b1 moves away (a partial sync): now this node drops the first Service too
    proxy.put(make_slice("default", "itp", _on_nodes({"b1": "node-2", "b2": "node-2"})))
    proxy.sync()
    assert topo.connect(topo.ns("client"), "10.96.0.40", 80, timeout=0.5)["answers"] == ["timeout"]


def test_external_traffic_policy_local_nodeport_keeps_the_client_address(topo, proxy):
    proxy.put(make_service("default", "etp", _policy(external="Local", node_port=30090), ip="10.96.0.42"),
              make_slice("default", "etp", _on_nodes({"b1": "node-1", "b2": "node-2"})),
              make_service("default", "etp-away", _policy(external="Local", node_port=30091), ip="10.96.0.43"),
              make_slice("default", "etp-away", _on_nodes({"b2": "node-2"})))
    proxy.sync(full=True)
    assert topo.answers("out", NODE_IP4, 30090, n=20) == [f"b1 {OUT_IP4}"] * 20  # not masqueraded
    assert topo.connect(topo.ns("out"), NODE_IP4, 30091, timeout=0.5)["answers"] == ["timeout"]
    # the ClusterIP of the same Services still reaches every endpoint
    assert set(names(topo.answers("client", "10.96.0.42", 80, n=30))) == {"b1", "b2"}
    assert set(names(topo.answers("client", "10.96.0.43", 80, n=5))) == {"b2"}


def test_external_traffic_policy_local_ipv6_nodeport(topo, proxy):
    def np(d):
        _policy(external="Local", node_port=30092)(d)
        d["spec"].update(clusterIPs=["fd00:10:96::42"], ipFamilies=["IPv6"])
    proxy.put(make_service("default", "etp6", np, ip="fd00:10:96::42"),
              make_slice("default", "etp6", _on_nodes({"b2": "node-1", "b3": "node-2"}, 1), family="IPv6"))
    proxy.sync(full=True)
    assert topo.answers("out", NODE_IP6, 30092, n=10) == [f"b2 {OUT_IP6}"] * 10


def test_local_traffic_falls_back_to_this_nodes_terminating_endpoint_on_its_own(topo, proxy):
    """kube-proxy decides the terminating fallback separately for the Local set: b2 ready
    on node-2 serves the ClusterIP; b1, terminating (still serving) on this node, serves
    the eTP-Local NodePort instead of a drop."""
    eps = [endpoint(B["b1"][0], ready=False, serving=True, terminating=True, node="node-1"),
           endpoint(B["b2"][0], node="node-2")]
    proxy.put(make_service("default", "term", _policy(external="Local", node_port=30093), ip="10.96.0.44"),
              make_slice("default", "term", eps))
    proxy.sync(full=True)
    assert topo.answers("out", NODE_IP4, 30093, n=10) == [f"b1 {OUT_IP4}"] * 10
    assert set(names(topo.answers("client", "10.96.0.44", 80, n=10))) == {"b2"}


def test_udp_flow_to_a_nodeport_moves_when_its_endpoint_leaves(topo, proxy):
    """kube-proxy clears a UDP NodePort flow whose endpoint stopped serving, whatever the
    address it came to; a flow to an endpoint that is only terminating is kept."""
    def np(d):
        d["spec"]["type"] = "NodePort"
        d["spec"]["ports"][0]["nodePort"] = 30053
    port = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]
    sl_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    proxy.put(make_service("kube-system", "dns-np", np, ip="10.96.0.11", ports=port),
              make_slice("kube-system", "dns-np", [endpoint(B["b2"][0])], ports=sl_ports))
    proxy.sync(full=True)
    ask = lambda n: topo.answers("out", NODE_IP4, 30053, proto="udp", n=n, sport=40054)  # noqa: E731
    assert set(names(ask(3))) == {"b2"}
    # b2 terminates but still serves, b3 is ready: new flows go to b3, b2's flow stays
    proxy.put(make_slice("kube-system", "dns-np", [
        endpoint(B["b2"][0], ready=False, serving=True, terminating=True), endpoint(B["b3"][0])],
        ports=sl_ports))
    proxy.sync()
    assert set(names(ask(2))) == {"b2"}
    # b2 is gone: its flow is cleared, the same client port now reaches b3
    proxy.put(make_slice("kube-system", "dns-np", [endpoint(B["b3"][0])], ports=sl_ports))
    proxy.sync()
    assert set(names(ask(2))) == {"b3"}


def test_a_clusterip_reached_from_outside_the_pod_cidrs_is_masqueraded(topo, proxy):
    """kube-proxy masquerades a ClusterIP connection whose source is not a pod, so the
    endpoint's reply comes back through this node; a pod's source is kept."""
    web(proxy, backends=("b2",), name="cip", ip="10.96.0.45")
    svc6 = make_service("default", "cip6", ip="fd00:10:96::45")
    proxy.put(svc6, make_slice("default", "cip6", [endpoint(B["b2"][1])], family="IPv6"))
    proxy.sync(full=True)
    out = topo.ns("out")
    sh("ip", "-n", out, "route", "add", "10.96.0.0/12", "via", NODE_IP4)
    sh("ip", "-n", out, "-6", "route", "add", "fd00:10:96::/112", "via", NODE_IP6)
    try:
        assert topo.answers("out", "10.96.0.45", 80, n=3) == [f"b2 {NODE_IP4}"] * 3
        assert topo.answers("out", "fd00:10:96::45", 80, n=3) == [f"b2 {NODE_IP6}"] * 3
    finally:
        sh("ip", "-n", out, "route", "del", "10.96.0.0/12")
        sh("ip", "-n", out, "-6", "route", "del", "fd00:10:96::/112")
    assert topo.answers("client", "10.96.0.45", 80, n=3) == [f"b2 {CLIENT}"] * 3


def test_external_traffic_policy_local_applies_only_to_traffic_from_outside(topo, proxy):
    """kube-proxy short-circuits a pod's and the node's own connection to an eTP-Local
    NodePort to every endpoint (the pod's address kept); only outside traffic is held to
    this node's endpoints."""
    proxy.put(make_service("default", "etp", _policy(external="Local", node_port=30094), ip="10.96.0.46"),
              make_slice("default", "etp", _on_nodes({"b1": "node-1", "b2": "node-2"})))
    proxy.sync(full=True)
    from_pod = topo.answers("client", NODE_IP4, 30094, n=40)
    assert set(names(from_pod)) == {"b1", "b2"} and {a.split()[1] for a in from_pod} == {CLIENT}
    assert set(names(topo.connect(topo.node, NODE_IP4, 30094, n=40)["answers"])) == {"b1", "b2"}
    assert topo.answers("out", NODE_IP4, 30094, n=10) == [f"b1 {OUT_IP4}"] * 10
