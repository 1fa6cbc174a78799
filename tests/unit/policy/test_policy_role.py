"""The roles' sync logic: after any sequence of partial syncs the rendered state equals a
full render of the final state (forward, and squashed into one batch)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.agent.nat_role import NatRole
from podnet.agent.policy_role import PolicyRole
from podnet.api.objects import IPPool
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import e2e_model
from policy_strategies import policies, policy_sets

MODEL = e2e_model()


def _full_model(state):
    r = PolicyRole("node-1")
    r.nft_fragment(state, None)
    r.committed(True)
    return r._model


@st.composite
def changes(draw):
    kind = draw(st.sampled_from(("policy", "pod-labels", "ns-labels", "delete-policy", "delete-pod")))
    if kind == "policy":
        return ("policy", draw(policies(name=draw(st.sampled_from(("p0", "p1", "new"))))))
    if kind == "pod-labels":
        return ("pod", draw(st.sampled_from(("x", "y", "z"))), draw(st.sampled_from("abc")),
                draw(st.sampled_from(({"pod": "a"}, {"pod": "b"}, {}, {"pod": "c", "extra": "1"}))))
    if kind == "ns-labels":
        return ("ns", draw(st.sampled_from(("x", "y", "z"))), draw(st.sampled_from(({"ns": "x"}, {"ns": "y"}, {}))))
    if kind == "delete-policy":
        return ("delpol", draw(st.sampled_from(("x", "y", "z"))), draw(st.sampled_from(("p0", "p1", "new"))))
    return ("delpod", draw(st.sampled_from(("x", "y", "z"))), draw(st.sampled_from("abc")))


def _apply(state, ch):
    if ch[0] == "policy":
        state.put(ch[1])
        return {ch[1].key}
    if ch[0] == "pod":
        p = state.get("Pod", ch[1], ch[2])
        if p is None:
            return set()
        np_ = p.with_metadata(labels=ch[3])
        state.put(np_)
        return {np_.key}
    if ch[0] == "ns":
        n = state.get("Namespace", "", ch[1]).with_metadata(labels=ch[2])
        state.put(n)
        return {n.key}
    kind = "NetworkPolicy" if ch[0] == "delpol" else "Pod"
    o = state.get(kind, ch[1], ch[2])
    if o is None:
        return set()
    state.remove(kind, ch[1], ch[2])
    return {o.key}


@settings(max_examples=60, deadline=None)
@given(policy_sets(), st.lists(changes(), min_size=1, max_size=5), st.booleans())
def test_partial_syncs_converge_to_full(pols, chs, squash):
    state = ClusterState.from_objects(MODEL + pols, node_name="node-1")
    role = PolicyRole("node-1")
    role.nft_fragment(state, None)
    role.committed(True)
    batch = set()
    for ch in chs:
        batch |= _apply(state, ch)
        if not squash:
            role.nft_fragment(state, batch)
            role.committed(True)
            batch = set()
    if squash:
        role.nft_fragment(state, batch)
        role.committed(True)
    full = _full_model(state)
    assert role._model.chains == full.chains
    assert role._model.sets == full.sets
    assert role._model.counters == full.counters


def test_failed_commit_makes_next_sync_full():
    state = ClusterState.from_objects(MODEL, node_name="node-1")
    role = PolicyRole("node-1")
    assert role.nft_fragment(state, None).startswith("add table inet podnet-pol\ndelete table")
    role.committed(False)
    assert "delete table" in role.nft_fragment(state, set())
    role.committed(True)
    assert role.nft_fragment(state, set()) == ""


def test_nat_role_partial_sync_rewrites_only_changed_sets():
    pool = IPPool({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "p"},
                   "spec": {"cidr": "10.244.0.0/16", "natOutgoing": True}})
    state = ClusterState.from_objects([pool])
    role = NatRole()
    assert "masquerade" in role.nft_fragment(state, None)
    role.committed(True)
    assert role.nft_fragment(state, {pool.key}) == ""
    role.committed(True)
    state.put(pool.with_spec({"cidr": "10.244.0.0/16", "natOutgoing": False}))
    script = role.nft_fragment(state, {pool.key})
    assert script == "flush set inet podnet-nat masq4\n"
