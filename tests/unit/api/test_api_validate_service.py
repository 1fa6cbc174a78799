"""A Service field podnet does not implement is refused at apply, naming the field; one it
does not know is refused as unknown. Never accepted and silently ignored."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from podnet.api.objects import from_dict
from podnet.api.validate import validate_object

SVC: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}


def errors(spec: dict[str, Any], port: dict[str, Any] | None = None) -> list[str]:
    d = copy.deepcopy(SVC)
    d["spec"].update(spec)
    d["spec"]["ports"][0].update(port or {})
    return [str(e) for e in validate_object(from_dict(d))]


@pytest.mark.parametrize("field, value", [
    ("spec.unknownThing", 1),
    ("spec.clusterIp", "10.96.0.9"),  # a typo of clusterIP
])
def test_an_unknown_spec_field_is_refused(field, value):
    name = field.split(".")[1]
    assert errors({name: value}) == [f"{field}: unknown field (podnet refuses what it would ignore)"]


def test_an_unknown_port_field_is_refused_and_app_protocol_is_accepted():
    assert errors({}, {"nodeport": 30080}) == [
        "spec.ports[0].nodeport: unknown field (podnet refuses what it would ignore)"]
    assert errors({}, {"appProtocol": "http"}) == []


def test_empty_values_of_optional_fields_are_not_settings():
    """`kubectl get -o yaml` of a real cluster's Service carries some of these empty."""
    assert errors({"externalIPs": [], "loadBalancerSourceRanges": None}) == []


def test_external_traffic_policy_needs_an_external_address():
    assert errors({"externalTrafficPolicy": "Local"}) == [
        "spec.externalTrafficPolicy: may only be set when type is NodePort or LoadBalancer "
        "or the Service has externalIPs (it decides nothing for a ClusterIP)"]
    assert errors({"externalTrafficPolicy": "Local", "type": "NodePort"}) == []


def test_external_ips_are_plain_addresses():
    assert errors({"externalIPs": ["192.0.2.10", "2001:db8::10"]}) == []
    assert errors({"externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Local"}) == []
    assert errors({"externalIPs": ["192.0.2.300", "127.0.0.1", "169.254.1.1", "224.0.0.1",
                                   "192.0.2.10", "192.0.2.10"]}) == [
        'spec.externalIPs[0]: "192.0.2.300" is not a valid IP address',
        'spec.externalIPs[1]: "127.0.0.1" may not be unspecified, loopback, link-local or multicast',
        'spec.externalIPs[2]: "169.254.1.1" may not be unspecified, loopback, link-local or multicast',
        'spec.externalIPs[3]: "224.0.0.1" may not be unspecified, loopback, link-local or multicast',
        'spec.externalIPs[5]: "192.0.2.10" is listed twice']


def test_load_balancer_fields():
    lb = {"type": "LoadBalancer"}
    assert errors({**lb, "loadBalancerSourceRanges": ["203.0.113.0/25", " 2001:db8::/64"],
                   "loadBalancerClass": "example.com/lb", "allocateLoadBalancerNodePorts": False}) == []
    assert errors(lb, {"nodePort": 30080}) == []
    assert errors({**lb, "loadBalancerSourceRanges": ["203.0.113.0/33"], "loadBalancerClass": "a/b/c",
                   "allocateLoadBalancerNodePorts": "no"}) == [
        'spec.loadBalancerSourceRanges[0]: "203.0.113.0/33" is not a valid CIDR',
        "spec.loadBalancerClass: \"a/b/c\" has an invalid prefix \"a/b\": must be a DNS-1123 subdomain",
        'spec.allocateLoadBalancerNodePorts: must be true or false, not "no"']
    for f, v in (("loadBalancerSourceRanges", ["203.0.113.0/25"]), ("loadBalancerClass", "example.com/lb"),
                 ("allocateLoadBalancerNodePorts", True)):
        assert errors({"type": "NodePort", f: v}) == [f"spec.{f}: may only be used when type is LoadBalancer"]


def test_traffic_distribution_values():
    for v in ("PreferSameZone", "PreferClose", "PreferSameNode"):
        assert errors({"trafficDistribution": v}) == []
    # Kubernetes refuses any other value, the empty string too
    for v in ("", "preferClose", "Nearby"):
        assert errors({"trafficDistribution": v}) == [
            f'spec.trafficDistribution: "{v}" is not one of PreferClose, PreferSameZone, PreferSameNode']


@pytest.mark.parametrize("field, value", [
    ("loadBalancerIP", "198.51.100.7"),
])
def test_a_field_podnet_does_not_implement_yet_is_refused_by_name(field, value):
    (msg,) = errors({field: value})
    assert msg.startswith(f"spec.{field}: podnet does not implement {field}")
