"""Real packets: for every shared case (tests/golden/policy/cases.yaml) the probe table
from real connections equals calc's prediction equals the expected table; then a
hypothesis differential test of random policies (real == predicted)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_cases import load_cases
from policy_strategies import policy_sets

pytestmark = pytest.mark.root
CASES = load_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_real_equals_predicted_equals_expected(node, name):
    untestable = []
    for i, step in enumerate(CASES[name]):
        node.set_objects("NetworkPolicy", step.policies)
        for pr in step.probes:
            real, predicted, results = node.tables(pr.port, pr.protocol, pr.family, pr.targets_extra)
            where = f"{name} step {i} {pr.protocol}/{pr.port} IPv{pr.family}"
            assert predicted.diff(pr.expected) == [], f"{where}: predicted\n{predicted.text()}"
            if all(r.outcome == "untestable" for r in results):
                untestable.append(where)
                continue
            assert real.diff(predicted) == [], f"{where}: real\n{real.text()}"
            assert all(real.get(r, c) is not None for r in real.rows for c in real.cols), real.text()
    node.set_objects("NetworkPolicy", [])
    if untestable:
        pytest.skip(f"kernel without SCTP (socket: Protocol not supported): {', '.join(untestable)}")


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(pols=policy_sets(), port=st.sampled_from([80, 81]), protocol=st.sampled_from(["TCP", "UDP"]),
       family=st.sampled_from([4, 6]))
def test_random_policies_real_equals_predicted(node, pols, port, protocol, family):
    node.set_objects("NetworkPolicy", pols)
    real, predicted, _ = node.tables(port, protocol, family)
    assert real.diff(predicted) == [], f"{[p.raw for p in pols]}\nreal\n{real.text()}\npredicted\n{predicted.text()}"


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(pols=policy_sets(max_size=4))
def test_random_policy_changes_always_load_as_partial_syncs(node, pols):
    """Every random policy set, reached from the previous one by a partial sync, is accepted
    by the kernel (syntax, overlapping intervals, deletion order)."""
    script = node.set_objects("NetworkPolicy", pols)
    assert "delete table" not in script
