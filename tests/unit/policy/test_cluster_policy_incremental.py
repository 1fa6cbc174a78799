"""The cluster half of the partial-sync planner (calc/policy/cluster_sync.py) against a full
recompute: after any random sequence of changes (ClusterNetworkPolicies and NetworkPolicies
added, edited, deleted; pods relabelled, given other ports or addresses, moved to another
node, deleted and added; namespaces relabelled; Nodes changed), synced one by one or
squashed into one batch as the agent does, the policy role's compiled result (every chain,
every pod's memberships and tier lists) and its rendered model equal a full compile and
render of the final state."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.agent.policy_role import PolicyRole
from podnet.api.objects import ClusterNetworkPolicy, ObjectKey, from_dict
from podnet.calc.model import ClusterState
from podnet.calc.policy.cluster_sync import plan_cluster
from podnet.calc.policy.compile import compile_policies
from podnet.calc.policy.table import e2e_model
from cluster_strategies import apply_change as _apply, cluster_changes as changes, cluster_policies
from cluster_fixtures import node_2


def _sync(role: PolicyRole, state: ClusterState, changed: set[ObjectKey] | None) -> None:
    role.nft_fragment(state, changed)
    assert role._pending is not None, "the sync failed"
    role.committed(True)


def _assert_equal_to_full(role: PolicyRole, state: ClusterState) -> None:
    full = compile_policies(state, lambda p: p.node_name == "node-1")
    got = role._compiled
    assert got is not None
    assert got.cluster == full.cluster
    assert got.pods == full.pods
    assert got.chains == full.chains
    fresh = PolicyRole("node-1")
    _sync(fresh, state, None)
    assert role._model is not None and fresh._model is not None
    assert role._model.chains == fresh._model.chains
    assert role._model.sets == fresh._model.sets
    assert role._model.counters == fresh._model.counters


@settings(max_examples=100, deadline=None)
@given(st.lists(cluster_policies(name="c0"), max_size=1), st.lists(cluster_policies(name="c1"), max_size=1),
       st.lists(changes(), min_size=1, max_size=8), st.booleans())
def test_partial_syncs_with_cluster_policies_equal_a_full_recompute(c0, c1, chs, squash):
    state = ClusterState.from_objects(e2e_model() + [node_2()] + c0 + c1, node_name="node-1")
    role = PolicyRole("node-1")
    _sync(role, state, None)
    batch: set[ObjectKey] = set()
    for ch in chs:
        batch |= _apply(state, ch)
        if not squash:
            _sync(role, state, batch)
            _assert_equal_to_full(role, state)
            batch = set()
    if squash:
        _sync(role, state, batch)
        _assert_equal_to_full(role, state)


def test_the_plan_is_narrow():
    """What the planner leaves out is what makes a change cheap: a NetworkPolicy edit
    recompiles no cluster chain and relists no pod; a pod relabel relists that pod only
    and recompiles only the policies whose peers pick it differently."""
    cnp = lambda name, peer: ClusterNetworkPolicy({  # noqa: E731
        "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name}, "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
                                             "ingress": [{"action": "Deny", "from": [peer]}]}})
    state = ClusterState.from_objects(e2e_model() + [
        cnp("by-pod", {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}}),
        cnp("by-ns", {"namespaces": {"matchLabels": {"ns": "y"}}})], node_name="node-1")
    previous = {o.key: o for o in state.pods + state.namespaces}
    np_key = ObjectKey("NetworkPolicy", "x", "p0")
    assert plan_cluster(state, {np_key}, previous).recompile == set()
    p = state.get("Pod", "x", "b")
    assert p is not None
    state.put(p.with_metadata(labels={"pod": "a"}))
    plan = plan_cluster(state, {p.key}, previous)
    assert plan.recompile == {"by-pod"} and plan.relist == {p.key}
    n = state.get("Namespace", "", "z")
    assert n is not None
    state.put(n.with_metadata(labels={"ns": "y"}))
    plan = plan_cluster(state, {n.key}, previous)
    assert plan.recompile == {"by-ns"} and plan.namespaces == {"z"} and plan.relist == set()


def test_ingress_named_ports_follow_the_subject():
    """An ingress named port resolves on the subject's pods: a relabel that moves a pod into
    the subject (and no peer) changes the chain, and the partial sync recompiles it."""
    c = ClusterNetworkPolicy({
        "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "named"},
        "spec": {"tier": "Admin", "priority": 1, "subject": {"pods": {"namespaceSelector": {"matchExpressions": [
                     {"key": "ns", "operator": "In", "values": ["x", "y"]}]}, "podSelector": {"matchLabels": {"pod": "a"}}}},
                 "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"ns": "z"}}}],
                              "protocols": [{"destinationNamedPort": "serve-80-tcp"}]}]}})
    state = ClusterState.from_objects(e2e_model() + [c], node_name="node-1")
    role = PolicyRole("node-1")
    _sync(role, state, None)
    for ch in (("labels", "x", "b", {"pod": "a"}), ("ns", "y", {"ns": "q"}), ("labels", "x", "a", {})):
        before = role._compiled.cluster["cnp/named/ingress"] if role._compiled else None
        _sync(role, state, _apply(state, ch))
        assert role._compiled is not None and role._compiled.cluster["cnp/named/ingress"] != before
        _assert_equal_to_full(role, state)


def test_a_pod_moving_to_another_node_leaves_the_named_ports_it_served():
    """Found by the property above: ingress named ports resolve on the subject's LOCAL pods,
    so a pod moved to another node (same labels, addresses and ports) must leave the
    rule's named-port addresses. The planners took such a move for a change of nothing."""
    cnp = ClusterNetworkPolicy({
        "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "c0"}, "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
                                             "ingress": [{"action": "Accept", "from": [{"namespaces": {}}],
                                                          "protocols": [{"destinationNamedPort": "serve-80-tcp"}]}]}})
    np = from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "named", "namespace": "x"},
                    "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]}})
    state = ClusterState.from_objects(e2e_model() + [node_2(), cnp, np], node_name="node-1")
    role = PolicyRole("node-1")
    _sync(role, state, None)
    _sync(role, state, _apply(state, ("move", "x", "a", "node-2")))
    _assert_equal_to_full(role, state)
