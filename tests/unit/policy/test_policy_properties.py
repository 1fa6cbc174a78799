"""Properties of the policy semantics over random policies (hypothesis)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import EGRESS, INGRESS, _side, allowed, isolating_policies, pod_by_ip
from podnet.calc.policy.compile import compile_policies, evaluate
from podnet.calc.policy.table import e2e_model
from policy_strategies import policies, policy_sets

MODEL = e2e_model()
PORTS = [(80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP"), (85, "TCP")]


def state(pols):
    return ClusterState.from_objects(MODEL + list(pols), node_name="node-1")


def ip(pod, fam):
    return next(a for a in pod.pod_ips if (":" in a) == (fam == 6))


@settings(max_examples=80, deadline=None)
@given(policy_sets(), st.sampled_from([4, 6]))
def test_compiled_form_equals_predicate(pols, fam):
    st_ = state(pols)
    comp = compile_policies(st_)
    by_ip = pod_by_ip(st_)
    for s in st_.pods:
        for d in st_.pods:
            for port, proto in PORTS:
                want = allowed(st_, s, d, port, proto, fam, by_ip).allowed
                assert evaluate(comp, ip(s, fam), ip(d, fam), port, proto) == want, (s, d, port, proto)


@settings(max_examples=50, deadline=None)
@given(policy_sets(), policies(name="extra"))
def test_adding_a_policy_never_removes_allowed_traffic_of_isolated_pods(pols, extra):
    before, after = state(pols), state(pols + [extra])
    for s in before.pods:
        for d in before.pods:
            if s.key == d.key:
                continue
            for port, proto in PORTS:
                for direction, subj, peer in ((INGRESS, d, s), (EGRESS, s, d)):
                    if not isolating_policies(before, subj, direction):
                        continue
                    peer_ip = ip(peer, 4)
                    b = _side(before, direction, subj, peer, peer_ip, port, proto)
                    a = _side(after, direction, subj, peer, peer_ip, port, proto)
                    assert not b.allowed or a.allowed


@settings(max_examples=50, deadline=None)
@given(policy_sets())
def test_unselected_pods_are_open(pols):
    st_ = state(pols)
    for d in st_.pods:
        for s in st_.pods:
            v = allowed(st_, s, d, 80, "TCP")
            if not isolating_policies(st_, d, INGRESS):
                assert v.ingress.allowed and not v.ingress.isolated
            if not isolating_policies(st_, s, EGRESS):
                assert v.egress.allowed
