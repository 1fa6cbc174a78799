"""Real packets for NAT outgoing (on/off, both families), anti-spoofing, the per-rule
counters, and podnet's decisions: node -> own pods allowed, Service VIP judged after DNAT."""
from __future__ import annotations

import json
import re

import pytest

import topo
from topo import pool
from podnet.api.objects import Node
from podnet.calc.policy.predicate import allowed
from podnet.cli.policy_probe import probe
from policy_cases import make_policy

pytestmark = pytest.mark.root

DENY_ALL = make_policy("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
FROM_Y = make_policy("x", "from-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})


def _one(node, src, target_ip, port=80, proto="TCP"):
    _, res = probe([(src, node.topo.pod_netns(src))], [("t", target_ip)], port, proto)
    return res[0].outcome


@pytest.mark.parametrize("target", [topo.OUTSIDE_V4, topo.OUTSIDE_V6])
def test_nat_outgoing_on_and_off(node, target):
    node.set_objects("NetworkPolicy", [])
    assert _one(node, "x/a", target) == "ok"  # masqueraded: the outside answers the node
    node.set_objects("IPPool", [pool("v4", "10.244.0.0/16", False), pool("v6", "fd00:10:244::/56", False)])
    try:
        assert _one(node, "x/a", target) == "timeout"  # pod address: no route back to it
        assert node.nat.nft_fragment(node.state, set()) == ""
    finally:
        node.set_objects("IPPool", [pool("v4", "10.244.0.0/16", True), pool("v6", "fd00:10:244::/56", True)])
    assert _one(node, "x/b", target) == "ok"


def _conntrack_from(node, ip: str) -> str:
    return topo.nsx(node.topo.node, "conntrack", "-L", "-s", ip, check=False).stdout


def _spoof_connect(node, src_pod: str, spoofed: str, dst: str) -> None:
    code = ("import socket,sys;s=socket.socket();s.settimeout(0.5);s.bind((sys.argv[1],0))\n"
            "try: s.connect((sys.argv[2],80))\nexcept OSError: pass")
    topo.nsx(node.topo.pod_netns(src_pod), "python3", "-c", code, spoofed, dst, check=False)


def _counter(node, name: str) -> int:
    out = topo.nsx(node.topo.node, "nft", "-j", "list", "counter", "inet", "podnet-pol", name).stdout
    return next(o["counter"]["packets"] for o in json.loads(out)["nftables"] if "counter" in o)


def test_anti_spoofing(node):
    node.set_objects("NetworkPolicy", [])
    ns = node.topo.pod_netns("x/a")
    spoofed = "10.244.0.5"  # y/b's address, claimed by x/a
    topo.nsx(ns, "ip", "addr", "add", f"{spoofed}/32", "dev", "eth0")
    try:
        before = _counter(node, "spoofed")
        _spoof_connect(node, "x/a", spoofed, "10.244.0.7")
        assert _counter(node, "spoofed") > before
        assert "dport=80" not in _conntrack_from(node, spoofed)  # dropped before confirmation
        # Control: with the pod's veth unknown to podnet the same packet is forwarded.
        xa = node.state.get("Pod", "x", "a")
        ann = {k: v for k, v in xa.annotations.items() if k != "podnet.io/host-veth"}
        node.state.put(xa.with_metadata(annotations=ann))
        node.sync({xa.key})
        try:
            _spoof_connect(node, "x/a", spoofed, "10.244.0.7")
            assert "dport=80" in _conntrack_from(node, spoofed)
        finally:
            node.state.put(xa)
            node.sync({xa.key})
    finally:
        topo.nsx(ns, "ip", "addr", "del", f"{spoofed}/32", "dev", "eth0", check=False)
        topo.nsx(node.topo.node, "conntrack", "-D", "-s", spoofed, check=False)
    assert _one(node, "x/a", "10.244.0.7") == "ok"  # its own address still passes


def test_counter_per_rule_counts_hits(node):
    node.set_objects("NetworkPolicy", [DENY_ALL, FROM_Y])
    before = _counter(node, "rule/x/from-y/ingress/0")
    assert _one(node, "y/c", "10.244.0.1") == "ok"
    assert _one(node, "z/c", "10.244.0.1") == "timeout"
    assert _counter(node, "rule/x/from-y/ingress/0") == before + 1  # one SYN; replies are conntrack's
    node.set_objects("NetworkPolicy", [])


def test_node_to_its_own_pods_is_allowed(node):
    node.set_objects("NetworkPolicy", [DENY_ALL])
    code = "import socket;socket.create_connection(('10.244.0.1',80),timeout=1).close()"
    assert topo.nsx(node.topo.node, "python3", "-c", code, check=False).returncode == 0
    node.state.put(Node({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": "node-1"},
                         "status": {"addresses": [{"type": "InternalIP", "address": topo.NODE_UP_V4}]}}))
    assert allowed(node.state, topo.NODE_UP_V4, node.state.get("Pod", "x", "a"), 80).allowed
    node.set_objects("NetworkPolicy", [])


def test_service_vip_is_judged_after_dnat_against_the_endpoint(node):
    vip = "10.96.0.50"
    script = ("add table ip pn-test-svc\n"
              "add chain ip pn-test-svc pre { type nat hook prerouting priority dstnat; }\n"
              f"add rule ip pn-test-svc pre ip daddr {vip} tcp dport 80 dnat to 10.244.0.1:80\n")
    node.nft.apply(script)
    try:
        node.set_objects("NetworkPolicy", [FROM_Y])
        assert _one(node, "y/b", vip) == "ok"
        assert _one(node, "z/b", vip) == "timeout"
        xa = node.state.get("Pod", "x", "a")
        assert allowed(node.state, node.state.get("Pod", "y", "b"), xa, 80).allowed
        assert not allowed(node.state, node.state.get("Pod", "z", "b"), xa, 80).allowed
    finally:
        node.nft.apply("delete table ip pn-test-svc\n")
        node.set_objects("NetworkPolicy", [])


def test_ruleset_uses_sets_not_rules_per_pod(node):
    node.set_objects("NetworkPolicy", [make_policy("x", "from-all-ns", {
        "podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})])
    text = node.nft.list_table("inet", "podnet-pol")
    chain = re.search(r"chain pol/x/from-all-ns/in \{(.*?)\n\t\}", text, re.S).group(1)
    assert len(chain.strip().splitlines()) == 2  # one rule per family, whatever the pod count
    node.set_objects("NetworkPolicy", [])


def test_a_pod_reaches_itself_through_a_service_vip_even_when_isolated(node):
    vip = "10.96.0.51"
    node.nft.apply("add table ip pn-test-hp\n"
                   "add chain ip pn-test-hp pre { type nat hook prerouting priority dstnat; }\n"
                   f"add rule ip pn-test-hp pre ip daddr {vip} tcp dport 80 dnat to 10.244.0.1:80\n"
                   "add chain ip pn-test-hp post { type nat hook postrouting priority srcnat; }\n"
                   "add rule ip pn-test-hp post ip saddr 10.244.0.1 ip daddr 10.244.0.1 masquerade\n")
    try:
        node.set_objects("NetworkPolicy", [make_policy("x", "lock", {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]})])
        assert _one(node, "x/a", vip) == "ok"
        assert _one(node, "y/a", vip) == "timeout"
        xa = node.state.get("Pod", "x", "a")
        assert allowed(node.state, xa, xa, 80).allowed
    finally:
        node.nft.apply("delete table ip pn-test-hp\n")
        node.set_objects("NetworkPolicy", [])


def test_malformed_policy_parts_load_and_match_nothing(node):
    bad = make_policy("x", "bad-parts", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}, {"podSelector": {"matchLabels": {"pod": "b"}}}],
         "ports": [{"port": 70000}, {"protocol": "ICMP", "port": 80}, {"port": 80, "endPort": 99999}]}]})
    node.set_objects("NetworkPolicy", [bad])
    try:
        assert _one(node, "x/b", "10.244.0.1") == "ok"
        assert _one(node, "x/c", "10.244.0.1") == "timeout"
    finally:
        node.set_objects("NetworkPolicy", [])
