"""Every expected table of the shared cases equals calc's prediction (predicate) and the
compiled per-pod form's evaluation (what the renderer draws)."""
from __future__ import annotations

import pytest

from podnet.calc.model import ClusterState
from podnet.calc.policy.compile import compile_policies, evaluate
from podnet.calc.policy.table import e2e_model, pod_label, predict
from policy_cases import load_cases

CASES = load_cases()
assert len(CASES) >= 20


def _state(policies):
    return ClusterState.from_objects(e2e_model() + list(policies), node_name="node-1")


@pytest.mark.parametrize("name", sorted(CASES))
def test_predicted_equals_expected(name):
    for i, step in enumerate(CASES[name]):
        st = _state(step.policies)
        for pr in step.probes:
            targets = sorted(st.pods, key=lambda p: (p.namespace, p.name)) + pr.targets_extra
            got = predict(st, pr.port, pr.protocol, pr.family, targets=targets)
            assert got.rows == pr.expected.rows and got.cols == pr.expected.cols
            assert got.diff(pr.expected) == [], (
                f"{name} step {i} {pr.protocol}/{pr.port} v{pr.family}\n{got.text()}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_equals_expected(name):
    for step in CASES[name]:
        st = _state(step.policies)
        comp = compile_policies(st)
        pods = {pod_label(p): p for p in st.pods}
        for pr in step.probes:
            for (r, c), want in pr.expected.cells.items():
                src = next(ip for ip in pods[r].pod_ips if (":" in ip) == (pr.family == 6))
                dst = c if c not in pods else next(
                    ip for ip in pods[c].pod_ips if (":" in ip) == (pr.family == 6))
                assert evaluate(comp, src, dst, pr.port, pr.protocol) == want, (name, r, c, pr)


def test_truth_table_text_marks_override_single_cells():
    from podnet.calc.policy.table import TruthTable
    t = TruthTable(["a", "b"], ["a", "b"], {("a", "a"): True, ("a", "b"): False,
                                            ("b", "a"): None, ("b", "b"): False})
    assert t.text() == "-\ta\tb\na\t.\tX\nb\t?\tX\n"
    assert t.text({("b", "b"): "R"}) == "-\ta\tb\na\t.\tX\nb\t?\tR\n"
