"""Golden rulesets of the policy renderer (PODNET_UPDATE_GOLDEN=1 regenerates) and the
shape of partial syncs."""
from __future__ import annotations


import pytest

from podnet.calc.model import ClusterState
from podnet.calc.policy.compile import compile_policies
from podnet.calc.policy.table import e2e_model
from podnet.dataplane.nft.policy import diff_script, full_script, render
from golden_files import GOLDEN_DIR, check_golden
from policy_cases import load_cases

GOLDEN = GOLDEN_DIR / "policy"
CASES = load_cases()
GOLDEN_CASES = ["deny-all-ingress", "ipblock-except", "mixed-ports", "egress-named-port",
                "sctp", "default-deny-both-egress-to-z", "ipblock-ipv6"]


def _model(policies, mutate=None):
    objs = e2e_model()
    if mutate:
        objs = [mutate(o) for o in objs]
    st = ClusterState.from_objects(objs + list(policies), node_name="node-1")
    return render(compile_policies(st, local=lambda p: p.namespace in ("x", "y")))


def _check(name: str, text: str) -> None:
    check_golden(GOLDEN / name, text)


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_full_ruleset_golden(case):
    _check(f"{case}.nft", full_script(_model(CASES[case][0].policies)))


def test_partial_sync_golden_update_and_delete():
    steps = CASES["update-and-delete"]
    m0, m1, m2 = (_model(s.policies) for s in steps)
    text = "# step 0 -> 1 (policy updated)\n" + diff_script(m0, m1)
    text += "# step 1 -> 2 (policy deleted)\n" + diff_script(m1, m2)
    _check("update-and-delete.diff.nft", text)


def test_no_change_renders_nothing():
    m = _model(CASES["mixed-ports"][0].policies)
    assert diff_script(m, m) == ""


def test_partial_sync_touches_only_changed_objects():
    pols = CASES["union-of-policies"][0].policies
    before = _model(pols)

    def relabel(o):
        if o.kind == "Namespace" and o.name == "z":
            return o.with_metadata(labels={"ns": "y"})
        return o
    after = _model(pols, relabel)
    script = diff_script(before, after)
    lines = script.splitlines()
    # z's pods now match `ns=y`: their addresses join the peer sets, named after the
    # selector, in place; no chain or rule is rewritten, no set is created or deleted
    adds = [ln for ln in lines if ln.startswith("add element inet podnet-pol sel")]
    assert len(adds) == 2 and all(ip in " ".join(adds) for ip in ("10.244.0.7", "fd00:10:244::9"))
    assert all(ln.startswith("add element inet podnet-pol sel") for ln in lines), lines
    assert not any("from-b" in ln for ln in lines)
    assert not any(ln.startswith(("delete table", "flush table")) for ln in lines)


def test_overlapping_ports_are_merged_for_the_interval_set():
    from policy_cases import make_policy
    np_ = make_policy("x", "ports", {"podSelector": {}, "ingress": [{"ports": [
        {"protocol": "UDP"}, {"protocol": "UDP", "port": 81}, {"port": 80, "endPort": 90}, {"port": 91}]}]})
    text = full_script(_model([np_]))
    assert "{ tcp . 80-91, udp . 0-65535 }" in text
