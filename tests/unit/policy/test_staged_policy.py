"""Staged policies (issue 20 §2): a policy annotated `podnet.io/staged: "true"` changes no
verdict and no rule, `podnet analyze` lists the cells it would change, `podnet promote`
enforces it through the write path; the annotation is validated."""
from __future__ import annotations

import yaml

from podnet.api.objects import from_dict
from podnet.api.validate import validate_object
from podnet.calc.policy.compile import compile_policies
from podnet.calc.policy.table import e2e_model, predict
from podnet.cli.main import main
from cluster_fixtures import CASES, state_of


def _staged(objs):
    return [o.with_metadata(annotations={"podnet.io/staged": "true"}) for o in objs]


def test_staged_policies_change_no_verdict_and_no_rule():
    pols = CASES["egress-accept-ingress-still-applies"][0].policies  # v1 and cluster policies
    staged, none = state_of(_staged(pols)), state_of([])
    assert predict(staged, 80).cells == predict(none, 80).cells
    comp = compile_policies(staged)
    assert not comp.chains and not comp.cluster
    assert all(p.ingress is None and p.egress is None and not p.admin_egress for p in comp.pods.values())
    assert len(staged.staged_policies) == len(pols)


def test_analyze_lists_what_staged_policies_would_change(tmp_path, capsys):
    step = CASES["rule-order-within-policy"][0]
    docs = [o.raw for o in e2e_model()] + [o.raw for o in _staged(step.policies)]
    for d in docs:
        if d["kind"] == "Pod":
            d.pop("status", None)
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    assert main(["analyze", "-f", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table, _, staged = out.partition("\nstaged policies")
    assert "X" not in table.split("\n", 1)[1]  # nothing denied: the staged policy is not enforced
    lines = staged.splitlines()
    want = sorted((r, c) for (r, c), ok in step.probes[0].expected.cells.items() if ok is False)
    assert lines[0].endswith(f"{len(want)} cells would change")
    assert sorted((ln.split()[2], ln.split()[4].rstrip(":")) for ln in lines[1:]) == want
    assert all("allowed -> denied" in ln and "ClusterNetworkPolicy b-then-y" in ln for ln in lines[1:])


def test_staged_annotation_is_validated():
    cnp = CASES["subject-pods"][0].policies[0]
    bad = cnp.with_metadata(annotations={"podnet.io/staged": "yes"})
    assert [str(e) for e in validate_object(bad)] == [
        'metadata.annotations[podnet.io/staged]: "yes" is not "true" or "false"']
    pod = from_dict({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": "x", "annotations": {"podnet.io/staged": "true"}}})
    assert [str(e) for e in validate_object(pod)] == [
        "metadata.annotations[podnet.io/staged]: only a NetworkPolicy or ClusterNetworkPolicy can be "
        "staged, not a Namespace"]
