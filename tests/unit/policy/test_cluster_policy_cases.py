"""ClusterNetworkPolicy cases (tests/golden/policy/cluster_cases.yaml), checked without
root three ways besides the kernel's (tests/kernel/policy/test_kpolicy_cluster.py): calc's
predicate, the compiled form's evaluation, the rendered nftables model run by the tracer,
and `podnet analyze` from the manifests alone."""
from __future__ import annotations

import pytest
import yaml

from podnet.calc.policy.compile import compile_policies, evaluate
from podnet.calc.policy.table import TruthTable, e2e_model, pod_label, predict
from podnet.cli.main import main
from podnet.dataplane.nft.policy import full_script, render
from golden_files import GOLDEN_DIR, check_golden
from cluster_fixtures import CASES, state_of
from nft_tracer import Tracer

assert len(CASES) >= 20


def _cells(st, pr):
    pods = {pod_label(p): p for p in st.pods}
    ip = lambda p: next(a for a in p.pod_ips if (":" in a) == (pr.family == 6))  # noqa: E731
    for (r, c), want in pr.expected.cells.items():
        yield r, c, ip(pods[r]), (c if c not in pods else ip(pods[c])), want


@pytest.mark.parametrize("name", sorted(CASES))
def test_predicted_equals_expected(name):
    for i, step in enumerate(CASES[name]):
        st = state_of(step.policies)
        for pr in step.probes:
            targets = sorted(st.pods, key=lambda p: (p.namespace, p.name)) + pr.targets_extra
            got = predict(st, pr.port, pr.protocol, pr.family, targets=targets)
            assert got.rows == pr.expected.rows and got.cols == pr.expected.cols
            assert got.diff(pr.expected) == [], f"{name} step {i} {pr.protocol}/{pr.port} v{pr.family}\n{got.text()}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_and_rendered_equal_expected(name):
    for step in CASES[name]:
        st = state_of(step.policies)
        comp = compile_policies(st)
        tracer = Tracer(render(comp))
        for pr in step.probes:
            for r, c, src, dst, want in _cells(st, pr):
                assert evaluate(comp, src, dst, pr.port, pr.protocol) == want, (name, r, c, pr.protocol, pr.port)
                assert tracer.allowed(src, dst, pr.protocol.lower(), pr.port) == want, (name, r, c, pr.port)


@pytest.mark.parametrize("name", ["admin-pass-falls-to-baseline", "ingress-named-port", "egress-to-nodes",
                                  "ipv6-networks", "admin-priority-tie-by-name"])
def test_analyze_prints_the_expected_tables(tmp_path, capsys, name):
    step = CASES[name][-1]
    docs = [o.raw for o in e2e_model()] + [p.raw for p in step.policies]
    for d in docs:  # analyze assigns pod addresses itself, in the documented order
        if d["kind"] == "Pod":
            d.pop("status", None)
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    for pr in step.probes:
        base = ["analyze", "-f", str(tmp_path), "--port", str(pr.port), "--protocol", pr.protocol,
                "--family", str(pr.family)]
        for extra in ([], *([["--to", a] for a in pr.targets_extra])):
            assert main(base + [a for a in extra]) == 0
            out = capsys.readouterr().out.splitlines()
            assert out[0] == f"{pr.protocol}/{pr.port} IPv{pr.family}:"
            got = TruthTable.parse("\n".join(out[1:]))
            assert got.rows == pr.expected.rows and got.diff(pr.expected) == [], "\n".join(out)


@pytest.mark.parametrize("name", ["admin-pass-falls-to-v1-allow", "egress-to-nodes", "ingress-named-port"])
def test_full_ruleset_golden(name):
    st = state_of(CASES[name][0].policies)
    m = render(compile_policies(st, local=lambda p: p.namespace in ("x", "y")))
    check_golden(GOLDEN_DIR / "policy" / f"cluster-{name}.nft", full_script(m))
