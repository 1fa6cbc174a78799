"""The ports pods may reach on a node (issue 12 §1) are one list, and the API server's
port in it is the one the lab's API server listens on."""
from __future__ import annotations

from podnet.calc.host import POD_TO_HOST_PORTS, host_protection
from podnet.calc.model import ClusterState
from podnet.lab import apiserver
from builders import make_node, make_pool


def test_allowed_ports_are_dns_and_the_api_server():
    assert set(POD_TO_HOST_PORTS) == {("udp", 53), ("tcp", 53), ("tcp", apiserver.API_PORT)}


def test_protection_from_the_cluster_state():
    st = ClusterState.from_objects([make_pool("v4", "10.244.0.0/16"), make_pool("v6", "fd00:10:244::/56"),
                                    make_node("n1", ["198.18.0.11", "fd00:198:18::11"]),
                                    make_node("n2", ["198.18.0.12", "bogus"])])
    hp = host_protection(st)
    assert hp.pools == {4: ("10.244.0.0/16",), 6: ("fd00:10:244::/56",)}
    assert hp.nodes == {4: ("198.18.0.11", "198.18.0.12"), 6: ("fd00:198:18::11",)}
    assert hp.allows("TCP", 53) and hp.allows("udp", 53) and hp.allows("tcp", 6443)
    assert not hp.allows("tcp", 2379) and not hp.allows("udp", 6443) and not hp.allows("tcp", None)


def test_refusal_decisions():
    hp = host_protection(ClusterState.from_objects([make_pool("v4", "10.244.0.0/16")]))
    assert hp.from_pod("10.244.3.4") and not hp.from_pod("198.18.0.11") and not hp.from_pod("fd00::1")
    assert hp.refuses("TCP", 2379, dnat=False, to_other_node=False)
    assert not hp.refuses("TCP", 2379, dnat=True, to_other_node=False)  # a Service sent it
    assert not hp.refuses("UDP", 53, dnat=False, to_other_node=False)
    assert hp.refuses("TCP", 30080, dnat=False, to_other_node=False)  # not DNATed: no NodePort here
    assert not hp.refuses("TCP", 30080, dnat=False, to_other_node=True)  # the other node's NodePort
    assert hp.refuses("TCP", 29999, dnat=False, to_other_node=True)
