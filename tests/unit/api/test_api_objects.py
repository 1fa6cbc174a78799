"""Typed views of the objects: the Kubernetes meanings of absent and empty fields."""
from __future__ import annotations

from podnet.api.objects import (EndpointSlice, IPPool, NetworkPolicy, Pod, PolicyPort, Service,
                                ServicePort, from_dict)


def np(spec):
    return from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                      "metadata": {"name": "p"}, "spec": spec})


def test_policy_types_defaulting():
    assert np({"podSelector": {}}).policy_types == ("Ingress",)
    assert np({"podSelector": {}, "egress": [{}]}).policy_types == ("Ingress", "Egress")
    assert np({"podSelector": {}, "egress": []}).policy_types == ("Ingress",)
    assert np({"podSelector": {}, "policyTypes": ["Egress"]}).policy_types == ("Egress",)


def test_policy_rules_absent_and_empty():
    p = np({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{}, {"from": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                             "ports": [{"port": "http"}, {"port": 80, "endPort": 90, "protocol": "UDP"}, {}]}]})
    assert isinstance(p, NetworkPolicy)
    assert p.pod_selector.matches({"app": "web"}) and not p.pod_selector.matches({})
    allow_all, rule = p.ingress
    assert allow_all.peers is None and allow_all.ports is None
    ns_peer, ip_peer = rule.peers
    assert ns_peer.pod_selector is None and ns_peer.namespace_selector.is_everything
    assert ip_peer.ip_block.cidr == "10.0.0.0/8" and ip_peer.ip_block.except_ == ("10.1.0.0/16",)
    assert rule.ports == (PolicyPort("TCP", "http"), PolicyPort("UDP", 80, 90), PolicyPort("TCP", None))


def test_service_views():
    s = from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"clusterIP": "None", "ports": [{"port": 80, "targetPort": "http", "name": "web"},
                                                           {"port": 53, "protocol": "UDP"}]}})
    assert isinstance(s, Service)
    assert s.headless and s.cluster_ips == [] and s.type == "ClusterIP" and not s.has_selector
    assert s.ports == (ServicePort(80, "TCP", "web", "http"), ServicePort(53, "UDP"))
    assert s.ports[1].effective_target == 53
    assert s.session_affinity == "None" and s.session_affinity_timeout == 10800
    assert not s.selector.matches({"app": "x"})  # no selector: endpoints are managed by hand


def test_pod_and_slice_views():
    p = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [{"name": "c", "image": "podnet/serve",
                                            "ports": [{"containerPort": 8080, "name": "http"}]}],
                            "hostname": "h", "subdomain": "s"},
                   "status": {"podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00:10:244::5"}]}})
    assert isinstance(p, Pod)
    assert p.named_port("http") == 8080 and p.named_port("http", "UDP") is None
    assert p.pod_ips == ["10.244.0.5", "fd00:10:244::5"] and p.dns_policy == "ClusterFirst"
    assert p.namespace == "default" and p.phase == "Pending" and not p.ready
    s = from_dict({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "x"},
                   "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]},
                                                        {"addresses": ["10.0.0.2"], "conditions": {"ready": False}}]})
    assert isinstance(s, EndpointSlice)
    assert [(e.ready, e.serving) for e in s.endpoints] == [(True, True), (False, False)]


def test_ippool_defaults():
    v4 = from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "a"},
                    "spec": {"cidr": "10.244.0.0/16"}})
    v6 = from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "b"},
                    "spec": {"cidr": "fd00:10:244::/56", "nodeSelector": "has(zone)"}})
    assert isinstance(v4, IPPool) and isinstance(v6, IPPool)
    assert (v4.block_size, v6.block_size) == (26, 122)
    assert v4.node_selector.is_everything and not v4.nat_outgoing and not v4.disabled
    assert v6.node_selector.matches({"zone": "a"}) and not v6.node_selector.matches({})
    assert v4.namespace == ""
