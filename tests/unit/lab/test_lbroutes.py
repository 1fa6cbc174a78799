"""Which routes the lab router learns for load-balancer addresses (lab/lbroutes.py, pure
part): every node for externalTrafficPolicy Cluster, only nodes with a ready endpoint for
Local (none: no route), nothing for another class or a Service without an address."""
from __future__ import annotations

from podnet.lab.lbroutes import _route_argv, desired_routes
from podnet.lab.topology import make_spec
from builders import endpoint, make_service, make_slice


def lb(name, ingress, **spec):
    def m(d):
        d["spec"].update(type="LoadBalancer", **spec)
        d["status"] = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}
    return make_service("default", name, m)


def test_routes_per_address_to_the_nodes_that_can_answer():
    spec = make_spec("t", nodes=3, dual_stack=True)
    n1, n2, n3 = spec.nodes
    services = [lb("c", ["198.51.100.1", "fd00:198:51::1"]),
                lb("l", ["198.51.100.2"], externalTrafficPolicy="Local"),
                lb("l-none", ["198.51.100.3"], externalTrafficPolicy="Local"),
                lb("other", ["198.51.100.4"], loadBalancerClass="example.com/lb"),
                lb("pending", [])]
    slices = [make_slice("default", "l", [endpoint("10.244.0.2", node="n2"), endpoint("10.244.0.3", node="n3"),
                                          endpoint("10.244.0.4", node="n1", ready=False)]),
              make_slice("default", "l-none", [endpoint("10.244.0.5", node="n1", ready=False)])]
    assert desired_routes(spec, services, slices) == {
        "198.51.100.1/32": tuple(sorted((n1.ip4, n2.ip4, n3.ip4))),
        "fd00:198:51::1/128": tuple(sorted((n1.ip6, n2.ip6, n3.ip6))),
        "198.51.100.2/32": tuple(sorted((n2.ip4, n3.ip4)))}


def test_route_command_one_hop_or_ecmp():
    assert _route_argv("198.51.100.1/32", ("198.18.0.11",)) == [
        "ip", "-4", "route", "replace", "198.51.100.1/32", "proto", "199", "via", "198.18.0.11"]
    assert _route_argv("fd00::1/128", ("fd00:198:18::11", "fd00:198:18::12"))[-6:] == [
        "nexthop", "via", "fd00:198:18::11", "nexthop", "via", "fd00:198:18::12"]
