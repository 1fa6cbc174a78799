"""`podnet analyze` from manifests alone: the shared cases' expected tables come out of
the command line (SCTP included: this is where its semantics are proven), JSON shape,
and bad input names the file and changes nothing."""
from __future__ import annotations

import json

import pytest
import yaml

from podnet.calc.policy.table import TruthTable, e2e_model
from podnet.cli.main import main
from policy_cases import load_cases

CASES = load_cases()


def _write(tmp_path, policies):
    docs = [o.raw for o in e2e_model()] + [p.raw for p in policies]
    for d in docs:  # analyze assigns addresses itself, in the documented order
        d.pop("status", None)
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))


@pytest.mark.parametrize("name", ["sctp", "ipblock-except", "egress-named-port", "match-expressions"])
def test_analyze_prints_the_expected_tables(tmp_path, capsys, name):
    step = CASES[name][0]
    _write(tmp_path, step.policies)
    for pr in step.probes:
        argv = ["analyze", "-f", str(tmp_path), "--port", str(pr.port), "--protocol", pr.protocol,
                "--family", str(pr.family)]
        assert main(argv) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == f"{pr.protocol}/{pr.port} IPv{pr.family}:"
        got = TruthTable.parse("\n".join(out[1:]))
        assert got.diff(pr.expected) == [] and got.rows == pr.expected.rows


def test_analyze_json_shape(tmp_path, capsys):
    _write(tmp_path, CASES["deny-all-ingress"][0].policies)
    assert main(["analyze", "-f", str(tmp_path), "-o", "json", "--to", "203.0.113.10"]) == 0
    data = json.loads(capsys.readouterr().out)
    t = data["tables"][0]
    assert (t["port"], t["protocol"], t["family"], t["to"]) == (80, "TCP", 4, ["203.0.113.10"])
    assert {"from": "x/a", "to": "203.0.113.10", "allowed": True} in t["cells"]


def test_analyze_bad_policy_names_the_file(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "bad", "namespace": "x"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}}))
    assert main(["analyze", "-f", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "cidr" in err
