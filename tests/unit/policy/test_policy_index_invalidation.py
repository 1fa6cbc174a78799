"""The pod index kept across partial syncs (calc/policy/index.pod_index) drops only the
memoised selections a change can alter (issue 20 §5: a pod or namespace change recomputes
only what its labels can affect). Whatever it keeps must be what a fresh index computes:
after any random sequence of changes (pods relabelled, readdressed, moved, deleted, added;
namespaces relabelled; policies changed), every memoised answer of the carried index
(pods of a namespace by selector, cluster policy subjects, their local part, peer
addresses) equals a fresh index's answer over the same state."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.api.objects import ObjectKey, Pod
from podnet.api.selector import LabelSelector
from podnet.calc.model import ClusterState
from podnet.calc.policy.index import PodIndex, pod_index
from podnet.calc.policy.match import EGRESS, INGRESS, rules_of
from podnet.calc.policy.table import e2e_model
from podnet.calc.policy.tiers import subject_of
from cluster_fixtures import node_2
from cluster_strategies import apply_change, cluster_changes, cluster_policies
from policy_strategies import policies

SELECTORS = [LabelSelector.everything()] + [LabelSelector.from_dict(d) for d in (
    {"matchLabels": {"pod": "a"}}, {"matchLabels": {"ns": "y"}},
    {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["b"]}]},
    {"matchExpressions": [{"key": "extra", "operator": "Exists"}]})]


def _local_ids(idx: PodIndex) -> set[int]:
    return {id(p) for p in idx.pods if isinstance(p, Pod) and p.node_name == "node-1"}


def _questions(state: ClusterState):
    """Every (kind, args) the compile asks of an index for this state's policies, plus a
    fixed grid of selectors."""
    qs = []
    for ns in ("x", "y", "z", "w"):
        qs.extend(("in_namespace", (ns, sel)) for sel in SELECTORS)
    qs.extend(("subject", (a, b)) for a in SELECTORS for b in SELECTORS)
    for cnp in state.cluster_policies:
        try:
            qs.append(("subject", subject_of(cnp)))
        except (TypeError, ValueError, AttributeError, KeyError):
            pass
    for np in state.policies:
        for r in rules_of(np, INGRESS) + rules_of(np, EGRESS):
            peers = [pe for pe in r.peers or () if pe.ip_block is None
                     and (pe.pod_selector is not None or pe.namespace_selector is not None)]
            if peers:
                qs.append(("peer_ips", (np, peers)))
    return qs


def _ask(idx: PodIndex, local: set[int], q):
    kind, args = q
    if kind == "in_namespace":
        return [id(p) for p in idx.in_namespace(*args)]
    if kind == "subject":
        pods, ids = idx.local_subject_pods(args[0], args[1], local)
        return [id(p) for p in idx.subject_pods(*args)], [id(p) for p in pods], ids
    return idx.peer_ips(*args)


@settings(max_examples=150, deadline=None)
@given(st.lists(cluster_policies(name="c0"), max_size=1), st.lists(policies(name="p0"), max_size=1),
       st.lists(st.lists(cluster_changes(), min_size=1, max_size=3), min_size=1, max_size=6))
def test_a_carried_index_answers_as_a_fresh_one(c0, p0, batches):
    state = ClusterState.from_objects(e2e_model() + [node_2()] + c0 + p0, node_name="node-1")
    idx = PodIndex(state)
    for q in _questions(state):  # fill every memo the changes may have to drop
        _ask(idx, _local_ids(idx), q)
    for batch in batches:
        changed: set[ObjectKey] = set()
        for ch in batch:
            changed |= apply_change(state, ch)
        idx = pod_index(state, idx, changed)
        fresh = PodIndex(state)
        local = _local_ids(idx)
        assert local == _local_ids(fresh)
        assert [id(p) for p in idx.pods] == [id(p) for p in fresh.pods]  # the order compile reads
        for q in _questions(state):
            assert _ask(idx, local, q) == _ask(fresh, local, q), (q, batch)


_LABEL_MAPS = st.dictionaries(st.sampled_from(("pod", "ns", "extra", "team")), st.sampled_from(("a", "b", "y", "1")),
                              max_size=3)
_SELECTORS = st.builds(lambda ml, key, op, vals: LabelSelector.from_dict(
    {"matchLabels": ml, "matchExpressions": [{"key": key, "operator": op, "values": vals}]
     if op in ("Exists", "DoesNotExist") or vals else []}),
    _LABEL_MAPS, st.sampled_from(("pod", "ns", "extra", "team")),
    st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")), st.lists(st.sampled_from(("a", "b", "1")), max_size=2))


@settings(max_examples=300, deadline=None)
@given(_SELECTORS, _LABEL_MAPS, _LABEL_MAPS)
def test_a_selector_reading_no_changed_key_decides_the_same(sel, old, new):
    """What the planners' key filter (sync.read_keys, cluster_sync) rests on."""
    from podnet.calc.policy.sync import changed_keys, selector_keys
    if selector_keys(sel).isdisjoint(changed_keys([(old, new)])):
        assert sel.matches(old) == sel.matches(new)
    assert changed_keys([(old, new)]) == frozenset(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
