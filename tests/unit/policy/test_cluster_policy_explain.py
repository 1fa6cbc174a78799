"""What explains a cluster-tier verdict: the predicate's sides name the tier, policy, rule
and action (what `podnet trace` prints and puts in its JSON), and `podnet describe pod`
lists the cluster policies selecting a pod in evaluation order."""
from __future__ import annotations

from podnet.calc.policy.describe import describe_cluster
from podnet.calc.policy.predicate import allowed
from podnet.trace.pod_hops import policy_step
from cluster_fixtures import CASES, state_of


def _pods(st, *labels):
    return [st.get("Pod", *lb.split("/")) for lb in labels]


def test_admin_deny_names_tier_policy_rule_and_action():
    st = state_of(CASES["rule-order-within-policy"][0].policies)
    ya, yb, xa = _pods(st, "y/a", "y/b", "x/a")
    v = allowed(st, ya, xa, 80)
    assert not v.allowed and v.ingress.tier == "Admin"
    assert v.reason == ("ingress: denied by Admin tier, ClusterNetworkPolicy b-then-y, ingress rule 1 "
                        "(rest-of-y): Deny")
    ok = allowed(st, yb, xa, 80).ingress
    assert ok.allowed and ok.cluster_rule is not None and ok.cluster_rule.name == "cnp/b-then-y/ingress/0"
    step = policy_step(ok, "x/a")
    assert step.data["rule"] == "cnp/b-then-y/ingress/0" and step.data["tier"] == "Admin"
    assert step.data["clusterRules"] == [{"tier": "Admin", "policy": "b-then-y", "index": 0,
                                          "name": "y-b-in", "action": "Accept"}]


def test_pass_then_v1_and_pass_then_default_are_explained():
    st = state_of(CASES["admin-pass-falls-to-v1-allow"][0].policies)
    ya, xa = _pods(st, "y/a", "x/a")
    side = allowed(st, ya, xa, 80).ingress
    assert side.allowed and side.tier == "NetworkPolicy" and side.rule is not None
    assert [p.policy for p in side.passed] == ["pass-y"]
    st = state_of(CASES["baseline-pass-is-default-allow"][0].policies)
    ya, xa = _pods(st, "y/a", "x/a")
    side = allowed(st, ya, xa, 80).ingress
    assert side.allowed and side.tier == "" and side.reason.endswith("Pass; then allowed by default")
    assert policy_step(side, "x/a").data["tier"] == "default"


def test_describe_lists_cluster_policies_in_evaluation_order():
    st = state_of(CASES["admin-pass-falls-to-baseline"][0].policies + CASES["ingress-named-port"][0].policies)
    xa, za = _pods(st, "x/a", "z/a")
    assert describe_cluster(st, xa) == [
        "Admin tier, priority 10: deny-named-80",
        "  ingress rule 0: Deny from pods in every namespace; ports named port serve-80-tcp (TCP/80)",
        "Admin tier, priority 10: pass-y",
        "  ingress rule 0: Pass from pods in namespaces ns=y; all ports",
        "Admin tier, priority 20: accept-all",
        "  ingress rule 0: Accept from pods in every namespace; all ports",
        "Baseline tier, priority 10: base-deny-y",
        "  ingress rule 0: Deny from pods in namespaces ns=y; all ports"]
    assert describe_cluster(st, za) == ["none selects this pod"]
