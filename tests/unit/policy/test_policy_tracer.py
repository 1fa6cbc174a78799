"""The rendered ruleset, run by a tracer (tests/unit/policy/nft_tracer.py), decides as the
predicate does: the renderer's semantics proven without root, for the shared cases and for
random policies."""
from __future__ import annotations

from hypothesis import given, settings

from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import allowed, pod_by_ip
from podnet.calc.policy.compile import compile_policies
from podnet.calc.policy.table import e2e_model
from podnet.dataplane.nft.policy import render
from nft_tracer import Tracer
from policy_cases import load_cases
from policy_strategies import policy_sets

MODEL = e2e_model()
PORTS = [(80, "TCP"), (81, "UDP"), (80, "SCTP"), (85, "TCP")]


def _check(pols, fam=4):
    st = ClusterState.from_objects(MODEL + list(pols), node_name="node-1")
    tr = Tracer(render(compile_policies(st)))
    by_ip = pod_by_ip(st)
    ip = lambda p: next(a for a in p.pod_ips if (":" in a) == (fam == 6))  # noqa: E731
    for s in st.pods:
        for d in st.pods:
            if s.key == d.key:
                continue
            for port, proto in PORTS:
                want = allowed(st, s, d, port, proto, fam, by_ip).allowed
                assert tr.allowed(ip(s), ip(d), proto, port) == want, (s, d, port, proto, fam)


def test_shared_cases_through_the_rendered_rules():
    for steps in load_cases().values():
        for step in steps:
            _check(step.policies, 4)
            _check(step.policies, 6)


@settings(max_examples=40, deadline=None)
@given(policy_sets())
def test_random_policies_through_the_rendered_rules(pols):
    _check(pols, 4)
    _check(pols, 6)
