"""hypothesis strategies: random ClusterNetworkPolicies (both tiers, every action, tied
priorities) mixed with random NetworkPolicies (policy_strategies.py), over the e2e model."""
from __future__ import annotations

from hypothesis import strategies as st

from podnet.api.objects import ClusterNetworkPolicy, Resource
from policy_strategies import NAMESPACES, PODS, _label_sel, policy_sets

NETWORKS = ("10.244.0.0/29", "10.244.0.4/31", "10.244.0.2/32", "0.0.0.0/0", "203.0.113.0/24",
            "fd00:10:244::/64", "fd00:10:244::4/126", "fd00:203:113::/64")
PROTOCOLS = (
    {"tcp": {"destinationPort": {"number": 80}}}, {"tcp": {"destinationPort": {"number": 81}}},
    {"udp": {"destinationPort": {"number": 80}}}, {"tcp": {"destinationPort": {"range": {"start": 79, "end": 80}}}},
    {"udp": {"destinationPort": {"range": {"start": 81, "end": 90}}}},
    {"destinationNamedPort": "serve-80-tcp"}, {"destinationNamedPort": "serve-81-udp"},
    {"destinationNamedPort": "no-such-port"},
)


@st.composite
def cluster_peer(draw, egress: bool) -> dict:
    kinds = ("namespaces", "pods") + (("networks", "nodes") if egress else ())
    kind = draw(st.sampled_from(kinds))
    if kind == "namespaces":
        return {"namespaces": draw(_label_sel("ns", NAMESPACES))}
    if kind == "pods":
        return {"pods": {"namespaceSelector": draw(_label_sel("ns", NAMESPACES)),
                         "podSelector": draw(_label_sel("pod", PODS))}}
    if kind == "nodes":
        return {"nodes": draw(st.sampled_from(({}, {"matchLabels": {"role": "other"}})))}
    return {"networks": draw(st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=2, unique=True))}


@st.composite
def cluster_rule(draw, egress: bool) -> dict:
    peers = draw(st.lists(cluster_peer(egress), min_size=1, max_size=2))
    r = {"action": draw(st.sampled_from(("Accept", "Deny", "Pass"))), ("to" if egress else "from"): peers}
    named_ok = not any("networks" in p or "nodes" in p for p in peers)
    choices = [p for p in PROTOCOLS if named_ok or "destinationNamedPort" not in p]
    if draw(st.booleans()):
        r["protocols"] = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=2))
    return r


@st.composite
def cluster_policies(draw, name: str) -> ClusterNetworkPolicy:
    if draw(st.booleans()):
        subject: dict = {"namespaces": draw(_label_sel("ns", NAMESPACES))}
    else:
        subject = {"pods": {"namespaceSelector": draw(_label_sel("ns", NAMESPACES)),
                            "podSelector": draw(_label_sel("pod", PODS))}}
    spec = {"tier": draw(st.sampled_from(("Admin", "Baseline"))), "priority": draw(st.integers(1, 3)),
            "subject": subject}
    ing = draw(st.lists(cluster_rule(False), max_size=2))
    eg = draw(st.lists(cluster_rule(True), max_size=2))
    if ing:
        spec["ingress"] = ing
    if eg:
        spec["egress"] = eg
    return ClusterNetworkPolicy({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                                 "metadata": {"name": name}, "spec": spec})


@st.composite
def mixes(draw, max_cluster: int = 3, max_v1: int = 2) -> tuple[list[Resource], list[Resource]]:
    """(cluster policies, v1 policies)."""
    n = draw(st.integers(1, max_cluster))
    cnps = [draw(cluster_policies(name=f"c{i}")) for i in range(n)]
    v1 = draw(policy_sets(max_size=max_v1)) if draw(st.booleans()) else []
    return cnps, v1
