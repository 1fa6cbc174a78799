"""hypothesis strategies: random ClusterNetworkPolicies (both tiers, every action, tied
priorities) mixed with random NetworkPolicies (policy_strategies.py), over the e2e model;
random changes of what a partial sync sees (cluster_changes, apply_change)."""
from __future__ import annotations

from hypothesis import strategies as st

from podnet.api.objects import ClusterNetworkPolicy, ObjectKey, Pod, Resource
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import e2e_model
from cluster_fixtures import node_2
from policy_strategies import NAMESPACES, PODS, _label_sel, policies, policy_sets

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


CNP_NAMES = ("c0", "c1", "c2", "c3")
LABELS = ({"pod": "a"}, {"pod": "b"}, {"pod": "c", "extra": "1"}, {})
NS_LABELS = ({"ns": "x"}, {"ns": "y"}, {"ns": "z"}, {})
POD_NAMES = PODS + ("d",)


@st.composite
def cluster_changes(draw, same_pods: bool = False):
    """One change of what a partial sync sees (apply_change makes it). `same_pods`: only
    changes that keep every pod where it is with its addresses (a kernel topology's pods)."""
    kinds = ("cnp", "cnp", "delcnp", "policy", "delpol", "labels", "labels", "ports", "ns", "ns", "node")
    if not same_pods:
        kinds += ("address", "move", "delpod", "addpod")
    kind = draw(st.sampled_from(kinds))
    pod_names = PODS if same_pods else POD_NAMES
    ns, pod = draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(pod_names))
    if kind == "cnp":
        return ("cnp", draw(cluster_policies(name=draw(st.sampled_from(CNP_NAMES)))))
    if kind == "delcnp":
        return ("delcnp", draw(st.sampled_from(CNP_NAMES)))
    if kind == "policy":
        return ("policy", draw(policies(name=draw(st.sampled_from(("p0", "p1"))))))
    if kind == "delpol":
        return ("delpol", ns, draw(st.sampled_from(("p0", "p1"))))
    if kind == "labels":
        return ("labels", ns, pod, draw(st.sampled_from(LABELS)))
    if kind == "ports":
        return ("ports", ns, pod, draw(st.sampled_from((80, 81, 8080))))
    if kind == "address":
        return ("address", ns, pod, draw(st.integers(100, 103)))
    if kind == "move":
        return ("move", ns, pod, draw(st.sampled_from(("node-1", "node-2"))))
    if kind == "ns":
        return ("ns", ns, draw(st.sampled_from(NS_LABELS)))
    if kind == "node":
        return ("node", draw(st.sampled_from(("gone", "other", "infra"))))
    return (kind, ns, pod)


def _pod(state: ClusterState, ns: str, name: str) -> Pod | None:
    p = state.get("Pod", ns, name)
    return p if isinstance(p, Pod) else None


def apply_change(state: ClusterState, ch: tuple) -> set[ObjectKey]:
    """Make one cluster_changes change in `state`; the keys it touched (a partial sync's batch)."""
    kind = ch[0]
    if kind in ("cnp", "policy"):
        state.put(ch[1])
        return {ch[1].key}
    if kind == "delcnp":
        state.remove("ClusterNetworkPolicy", "", ch[1])
        return {ObjectKey("ClusterNetworkPolicy", "", ch[1])}
    if kind == "delpol":
        state.remove("NetworkPolicy", ch[1], ch[2])
        return {ObjectKey("NetworkPolicy", ch[1], ch[2])}
    if kind == "ns":
        n = state.get("Namespace", "", ch[1])
        assert n is not None
        state.put(n.with_metadata(labels=ch[2]))
        return {n.key}
    if kind == "node":
        state.remove("Node", "", "node-2")
        if ch[1] != "gone":
            state.put(node_2().with_metadata(labels={"role": ch[1]}))
        return {ObjectKey("Node", "", "node-2")}
    key = ObjectKey("Pod", ch[1], ch[2])
    p = _pod(state, ch[1], ch[2])
    if kind == "addpod":
        if p is None:  # a fresh pod, its own addresses, the model's ports
            tmpl = next(o for o in e2e_model() if isinstance(o, Pod))
            i = 200 + 10 * NAMESPACES.index(ch[1]) + POD_NAMES.index(ch[2])
            new = tmpl.with_metadata(name=ch[2], namespace=ch[1], labels={"pod": ch[2]}).with_status(
                {"podIPs": [{"ip": f"10.244.0.{i}"}, {"ip": f"fd00:10:244::{i:x}"}], "podIP": f"10.244.0.{i}"})
            state.put(new)
        return {key}
    if p is None:
        return set()
    if kind == "delpod":
        state.remove("Pod", ch[1], ch[2])
    elif kind == "labels":
        state.put(p.with_metadata(labels=ch[3]))
    elif kind == "ports":  # serve-80-tcp now names another port; the other names are gone
        spec = dict(p.spec)
        spec["containers"] = [{"name": "c", "image": "x", "ports": [
            {"name": "serve-80-tcp", "containerPort": ch[3], "protocol": "TCP"},
            {"name": "serve-81-udp", "containerPort": 81, "protocol": "UDP"}]}]
        state.put(p.with_spec(spec))
    elif kind == "address":
        i = ch[3]
        state.put(p.with_status({"podIPs": [{"ip": f"10.244.0.{i}"}, {"ip": f"fd00:10:244::{i:x}"}],
                                 "podIP": f"10.244.0.{i}"}))
    elif kind == "move":
        state.put(p.with_spec({**p.spec, "nodeName": ch[3]}))
    return {key}
