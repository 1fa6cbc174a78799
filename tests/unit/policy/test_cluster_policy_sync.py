"""The agent's partial syncs with cluster policies: after each change (a NetworkPolicy
edited, which keeps the cluster chains; a ClusterNetworkPolicy edited; a pod relabelled)
the policy role's model equals a full compile and render of the same state."""
from __future__ import annotations

from podnet.agent.policy_role import PolicyRole
from podnet.calc.host import host_protection
from podnet.calc.policy.compile import compile_policies
from podnet.dataplane.nft.policy import full_script, render
from cluster_fixtures import CASES, state_of


def _check(role, st, changed):
    role.nft_fragment(st, changed)
    model = role._pending[0]
    role.committed(True)
    fresh = render(compile_policies(st, lambda p: p.node_name == "node-1"), None, host_protection(st))
    assert full_script(model) == full_script(fresh)


def test_partial_syncs_equal_full_ones():
    pols = (CASES["admin-pass-falls-to-v1-allow"][0].policies + CASES["v1-overrides-baseline"][0].policies
            + CASES["egress-named-port"][0].policies)
    st = state_of(pols)
    role = PolicyRole("node-1")
    _check(role, st, None)
    np_ = st.get("NetworkPolicy", "x", "from-y")
    st.put(np_.with_spec({"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{}]}))
    kept = role._compiled.cluster
    _check(role, st, {np_.key})
    # only a NetworkPolicy changed: the cluster chains are the very same objects
    assert role._compiled.cluster.keys() == kept.keys()
    assert all(role._compiled.cluster[k] is ch for k, ch in kept.items())
    c = st.get("ClusterNetworkPolicy", "", "deny-all")
    st.put(c.with_spec({**c.spec, "priority": 5}))
    _check(role, st, {c.key})
    p = st.get("Pod", "z", "a")
    st.put(p.with_metadata(labels={"pod": "b"}))
    _check(role, st, {p.key})
    ns = st.get("Namespace", "", "y")
    st.put(ns.with_metadata(labels={"ns": "z"}))
    _check(role, st, {ns.key})
