"""calc.services: which endpoints a service port gets, in which family, with which NodePort."""
from __future__ import annotations

from podnet.calc.services import EndpointAddr, build_table, entries_for_service, node_ips_of
from builders import endpoint, make_node, make_service, make_slice
from svc_fixture import table


def _eps(entry):
    return [(e.ip, e.port) for e in entry.endpoints]


def test_ready_endpoints_only_and_target_port_from_slice():
    t = table()
    web = t.entries[("default/web/tcp/http", 4)]
    assert web.vip == "10.96.0.20" and web.port == 80
    assert _eps(web) == [("10.244.1.2", 8080), ("10.244.1.3", 8080), ("10.244.2.2", 8080)]


def test_terminating_serving_endpoints_are_the_fallback_when_none_ready():
    svc = make_service("default", "web")
    s = make_slice("default", "web", [endpoint("10.244.1.2", ready=False, serving=True, terminating=True),
                                      endpoint("10.244.1.3", ready=False, serving=False, terminating=True)])
    (e,) = entries_for_service(svc, [s])
    assert _eps(e) == [("10.244.1.2", 8080)]
    s2 = make_slice("default", "web", [endpoint("10.244.1.2", ready=False, serving=True, terminating=True),
                                       endpoint("10.244.1.4")])
    (e,) = entries_for_service(svc, [s2])
    assert _eps(e) == [("10.244.1.4", 8080)]


def test_headless_externalname_and_unknown_protocol_get_nothing():
    t = table()
    assert not [k for k in t.entries if "/headless/" in k[0] or "/ext/" in k[0]]
    svc = make_service("default", "x", ports=[{"port": 80, "protocol": "ICMP"}])
    assert entries_for_service(svc, []) == []


def test_dual_stack_gets_one_entry_per_family_with_its_own_endpoints():
    t = table()
    v4, v6 = t.entries[("default/dual/tcp/http", 4)], t.entries[("default/dual/tcp/http", 6)]
    assert v4.vip == "10.96.0.30" and v6.vip == "fd00:10:96::30"
    assert _eps(v6) == [("fd00:10:244:1::7", 8080), ("fd00:10:244:2::7", 8080)]


def test_port_matched_by_name_and_protocol_across_slices_deduplicated():
    svc = make_service("kube-system", "dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    a = make_slice("kube-system", "dns", [endpoint("10.244.1.9")], name="a",
                   ports=[{"name": "dns", "port": 5353, "protocol": "UDP"}])
    b = make_slice("kube-system", "dns", [endpoint("10.244.1.9"), endpoint("10.244.2.9")], name="b",
                   ports=[{"name": "dns", "port": 5353, "protocol": "UDP"},
                          {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}])
    es = {e.protocol: e for e in entries_for_service(svc, [a, b])}
    assert _eps(es["UDP"]) == [("10.244.1.9", 5353), ("10.244.2.9", 5353)]
    assert _eps(es["TCP"]) == [("10.244.1.9", 5354), ("10.244.2.9", 5354)]


def test_nodeport_only_for_nodeport_types_and_affinity_timeout():
    t = table()
    assert t.entries[("default/np/tcp/http", 4)].node_port == 30080
    assert t.entries[("default/web/tcp/http", 4)].node_port == 0
    assert t.entries[("default/sticky/tcp/http", 4)].affinity_timeout == 60
    svc = make_service("default", "s", lambda d: d["spec"].update(sessionAffinity="ClientIP"))
    assert entries_for_service(svc, [])[0].affinity_timeout == 10800
    clusterip_with_nodeport = make_service("default", "c", ports=[{"port": 80, "nodePort": 30001}])
    assert entries_for_service(clusterip_with_nodeport, [])[0].node_port == 0


def test_bad_objects_are_skipped_not_raised():
    bad = make_service("default", "bad", ports=[{"port": "eighty"}])
    worse = make_service("default", "worse", ip="not-an-ip")
    good = make_service("default", "good", ip="10.96.0.99")
    t = build_table([bad, worse, good], [], ["198.18.0.11", "bogus"])
    assert list(t.entries) == [("default/good/tcp/http", 4)]


def test_endpoint_port_out_of_range_is_ignored():
    svc = make_service("default", "web")
    s = make_slice("default", "web", [endpoint("10.244.1.2")],
                   ports=[{"name": "http", "port": 70000, "protocol": "TCP"}])
    (e,) = entries_for_service(svc, [s])
    assert e.endpoints == ()


def test_node_ips_from_node_status_plus_extra():
    n = make_node("node-1", ["198.18.0.12", "fd00:198:18::12"])
    assert node_ips_of(n, ["198.18.0.99", "nope"]) == ("198.18.0.12", "198.18.0.99", "fd00:198:18::12")
    assert EndpointAddr("10.0.0.1", 1) < EndpointAddr("10.0.0.2", 1)


def _ips(eps):
    return [e.ip for e in eps]


def test_traffic_policies_default_to_cluster_and_use_every_endpoint():
    t = table()
    np = t.entries[("default/np/tcp/http", 4)]
    assert not np.internal_local and not np.external_local
    assert np.internal_endpoints == np.external_endpoints == np.endpoints


def test_internal_traffic_policy_local_keeps_this_nodes_endpoints_only():
    svc = make_service("default", "web", lambda d: d["spec"].update(internalTrafficPolicy="Local"))
    s = make_slice("default", "web", [endpoint("10.244.1.2", node="n1"), endpoint("10.244.2.2", node="n2")])
    (on_n1,) = entries_for_service(svc, [s], "n1")
    assert on_n1.internal_local and _ips(on_n1.internal_endpoints) == ["10.244.1.2"]
    assert _ips(on_n1.endpoints) == ["10.244.1.2", "10.244.2.2"]
    (on_n3,) = entries_for_service(svc, [s], "n3")
    assert on_n3.internal_endpoints == () and on_n3.endpoints  # endpoints, none here: dropped


def test_an_endpoint_without_node_name_is_not_local_to_a_local_policy():
    """kube-proxy: an endpoint whose slice names no node is not local, so a Local policy
    never sends traffic to it; it may still be this node's pod for hairpin purposes."""
    svc = make_service("default", "web", lambda d: d["spec"].update(internalTrafficPolicy="Local"))
    s = make_slice("default", "web", [endpoint("10.244.1.2", node="n1"), endpoint("10.244.9.9", node="")])
    (e,) = entries_for_service(svc, [s], "n1")
    assert _ips(e.internal_endpoints) == ["10.244.1.2"]
    unknown = next(ep for ep in e.endpoints if ep.ip == "10.244.9.9")
    assert unknown.local and not unknown.here
    (e3,) = entries_for_service(svc, [s], "n3")
    assert e3.internal_endpoints == ()


def test_external_traffic_policy_local_only_for_the_nodeport():
    def m(d):
        d["spec"].update(type="NodePort", externalTrafficPolicy="Local")
        d["spec"]["ports"][0]["nodePort"] = 30080
    svc = make_service("default", "web", m)
    s = make_slice("default", "web", [endpoint("10.244.1.2", node="n1"), endpoint("10.244.2.2", node="n2")])
    (e,) = entries_for_service(svc, [s], "n2")
    assert e.external_local and not e.internal_local
    assert _ips(e.external_endpoints) == ["10.244.2.2"]
    assert _ips(e.internal_endpoints) == ["10.244.1.2", "10.244.2.2"]
    # without a nodePort (a ClusterIP Service) the field has nothing to act on
    plain = make_service("default", "web", lambda d: d["spec"].update(externalTrafficPolicy="Local"))
    (e,) = entries_for_service(plain, [s], "n2")
    assert not e.external_local


def _terminating(ip: str, node: str) -> dict:
    return endpoint(ip, ready=False, serving=True, terminating=True, node=node)


def test_terminating_fallback_is_decided_separately_for_cluster_and_local():
    """kube-proxy falls back to serving-terminating endpoints independently for the
    Cluster and the Local set: a ready endpoint elsewhere must not hide this node's
    terminating ones from Local traffic (nor the other way round)."""
    def m(d):
        d["spec"].update(type="NodePort", externalTrafficPolicy="Local", internalTrafficPolicy="Local")
        d["spec"]["ports"][0]["nodePort"] = 30080
    svc = make_service("default", "web", m)
    s = make_slice("default", "web", [_terminating("10.244.1.2", "n1"), endpoint("10.244.2.2", node="n2"),
                                      endpoint("10.244.1.3", ready=False, serving=False, terminating=True,
                                               node="n1")])
    (e,) = entries_for_service(svc, [s], "n1")
    assert _ips(e.endpoints) == ["10.244.2.2"]  # Cluster: the ready one wins
    assert _ips(e.local_endpoints) == ["10.244.1.2"]  # Local: no ready one here, so terminating
    assert _ips(e.internal_endpoints) == _ips(e.external_endpoints) == ["10.244.1.2"]
    # and a ready local endpoint hides the local terminating one
    s2 = make_slice("default", "web", [_terminating("10.244.1.2", "n1"), endpoint("10.244.1.4", node="n1")])
    (e2,) = entries_for_service(svc, [s2], "n1")
    assert _ips(e2.local_endpoints) == ["10.244.1.4"] == _ips(e2.endpoints)
    # a node without a usable endpoint of its own still has a Cluster set: drop, not reject
    (e3,) = entries_for_service(svc, [s], "n3")
    assert e3.local_endpoints == () and e3.endpoints


def test_stale_udp_flows_are_those_of_endpoints_that_stopped_serving():
    from podnet.calc.services import StaleFlow, stale_udp_flows

    def np(d):
        d["spec"]["type"] = "NodePort"
        d["spec"]["ports"][0].update(protocol="UDP", nodePort=30053)
    svc = make_service("default", "dns", np)
    ports = [{"name": "http", "port": 5353, "protocol": "UDP"}]
    (old,) = entries_for_service(svc, [make_slice("default", "dns", [endpoint("10.244.1.2"), endpoint("10.244.1.3")],
                                                  ports=ports)])
    (term,) = entries_for_service(svc, [make_slice("default", "dns", [
        endpoint("10.244.1.2", ready=False, serving=True, terminating=True), endpoint("10.244.1.3")], ports=ports)])
    assert stale_udp_flows(old, term) == []  # terminating but serving: its flows stay
    (gone,) = entries_for_service(svc, [make_slice("default", "dns", [endpoint("10.244.1.3")], ports=ports)])
    assert stale_udp_flows(term, gone) == [StaleFlow(4, "10.244.1.2", dst="10.96.0.10"),
                                          StaleFlow(4, "10.244.1.2", node_port=30053)]
    assert len(stale_udp_flows(gone, None)) == 2  # the Service went away
    tcp = make_service("default", "web")
    (t,) = entries_for_service(tcp, [make_slice("default", "web", [endpoint("10.244.1.2")])])
    assert stale_udp_flows(t, None) == []


def test_stale_udp_flows_to_an_external_ip_are_forgotten_too():
    """kube-proxy clears flows to every service address of a gone endpoint: the external
    IPs of its family as well as the ClusterIP (the IPv6 one belongs to the IPv6 entry)."""
    from podnet.calc.services import StaleFlow, stale_udp_flows

    def ext(d):
        d["spec"]["ports"][0].update(protocol="UDP")
        d["spec"]["externalIPs"] = ["192.0.2.9", "2001:db8::9"]
    svc = make_service("default", "dns", ext)
    ports = [{"name": "http", "port": 5353, "protocol": "UDP"}]
    (old,) = entries_for_service(svc, [make_slice("default", "dns", [endpoint("10.244.1.2")], ports=ports)])
    assert old.external_ips == ("192.0.2.9",)
    assert stale_udp_flows(old, None) == [StaleFlow(4, "10.244.1.2", dst="10.96.0.10"),
                                          StaleFlow(4, "10.244.1.2", dst="192.0.2.9")]


def test_stale_udp_flows_to_a_removed_external_ip():
    from podnet.calc.services import StaleFlow, stale_udp_flows

    def ext(ips):
        def m(d):
            d["spec"]["ports"][0].update(protocol="UDP")
            d["spec"]["externalIPs"] = ips
        return m
    ports = [{"name": "http", "port": 5353, "protocol": "UDP"}]
    sl = [make_slice("default", "dns", [endpoint("10.244.1.2")], ports=ports)]
    (old,) = entries_for_service(make_service("default", "dns", ext(["192.0.2.9", "192.0.2.10"])), sl)
    (new,) = entries_for_service(make_service("default", "dns", ext(["192.0.2.10"])), sl)
    assert stale_udp_flows(old, new) == [StaleFlow(4, "10.244.1.2", dst="192.0.2.9")]
    assert stale_udp_flows(new, new) == []
