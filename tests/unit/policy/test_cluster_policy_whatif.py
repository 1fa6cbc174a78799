"""`podnet analyze --diff A B` and `--with FILE`: exactly the cells a policy change flips
(read off a case's expected table: before it, everything is allowed), each with the rule
behind it; --diff exits 1 when something changes and 0 when nothing does."""
from __future__ import annotations

import json

import yaml

from podnet.calc.policy.table import e2e_model
from podnet.cli.main import main
from cluster_fixtures import CASES


def _dump(path, objs):
    docs = [o.raw for o in objs]
    for d in docs:
        if d["kind"] == "Pod":
            d.pop("status", None)  # analyze assigns addresses itself, in the documented order
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def _expected_flips(name):
    pr = CASES[name][0].probes[0]
    return sorted((r, c) for (r, c), ok in pr.expected.cells.items() if ok is False)


def test_diff_lists_the_flipped_cells_with_their_cause(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _dump(tmp_path / "a" / "all.yaml", e2e_model())
    _dump(tmp_path / "b" / "all.yaml", e2e_model() + CASES["rule-order-within-policy"][0].policies)
    assert main(["analyze", "--diff", str(tmp_path / "a"), str(tmp_path / "b"), "-o", "json"]) == 1
    got = json.loads(capsys.readouterr().out)["changes"]
    assert sorted((c["from"], c["to"]) for c in got) == _expected_flips("rule-order-within-policy")
    assert all(c["before"] is True and c["after"] is False for c in got)
    assert got[0]["cause"] == ("ingress: denied by Admin tier, ClusterNetworkPolicy b-then-y, ingress rule 1 "
                               "(rest-of-y): Deny")
    assert main(["analyze", "--diff", str(tmp_path / "b"), str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out == "no reachability changes\n"


def test_with_applies_a_file_on_top(tmp_path, capsys):
    base = _dump(tmp_path / "base.yaml", e2e_model() + [p for p in CASES["admin-pass-falls-to-v1"][0].policies
                                                        if p.kind == "NetworkPolicy"])
    extra = _dump(tmp_path / "cnp.yaml", [p for p in CASES["admin-pass-falls-to-v1"][0].policies
                                          if p.kind == "ClusterNetworkPolicy"])
    assert main(["analyze", "-f", base, "--with", extra]) == 0
    lines = capsys.readouterr().out.splitlines()
    # v1 denies all ingress of x; the Admin tier accepts all but y (passed on to v1)
    flipped = sorted((ln.split()[2], ln.split()[4].rstrip(":")) for ln in lines)
    assert flipped == sorted((f"{s}/{p}", f"x/{d}") for s in "xz" for p in "abc" for d in "abc"
                             if (s, p) != ("x", d))
    assert all(ln.startswith("TCP/80 IPv4 ") and "denied -> allowed" in ln
               and "Admin tier, ClusterNetworkPolicy accept-all, ingress rule 0" in ln for ln in lines)
