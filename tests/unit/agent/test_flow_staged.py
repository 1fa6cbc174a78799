"""Flows name what staged policies would change (issue 20 §2, agent/flow_staged.py): the
predicate over the policies in force and over the state with the staged ones enforced,
compared with what the kernel did to the recorded flow."""
from __future__ import annotations

from typing import Any

from podnet.api.objects import from_dict
from podnet.agent.flow_staged import StagedJudge
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import e2e_model

STAGED = {"podnet.io/staged": "true"}


def state(*policies: dict[str, Any]) -> ClusterState:
    return ClusterState.from_objects(e2e_model() + [from_dict(p) for p in policies], node_name="node-1")


def deny_all_into(ns: str, staged: bool) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": "deny-in", **({"annotations": STAGED} if staged else {})},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def admin(action: str, staged: bool) -> dict[str, Any]:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": f"admin-{action.lower()}", **({"annotations": STAGED} if staged else {})},
            "spec": {"tier": "Admin", "priority": 3,
                     "subject": {"namespaces": {"matchLabels": {"ns": "y"}}},
                     "ingress": [{"name": "from-x", "action": action,
                                  "from": [{"namespaces": {"matchLabels": {"ns": "x"}}}]}]}}


def ip(st: ClusterState, ns: str, pod: str, family: int = 4) -> str:
    p = next(p for p in st.pods if (p.namespace, p.name) == (ns, pod))
    return next(a for a in p.pod_ips if (":" in a) == (family == 6))


def record(src: str, dst: str, verdict: str = "forwarded", proto: str = "TCP", port: int = 80,
           decisions: list[dict[str, Any]] | None = None, endpoint: str = "") -> dict[str, Any]:
    r: dict[str, Any] = {"protocol": proto, "verdict": verdict, "decisions": decisions or [],
                         "source": {"ip": src, "port": 40000}, "destination": {"ip": dst, "port": port}}
    if endpoint:
        r["destination"] = {"ip": "10.96.0.10", "port": 8080}
        r["endpoint"] = {"ip": endpoint, "port": port}
    return r


def test_a_forwarded_flow_a_staged_policy_would_deny_says_so():
    st = state(deny_all_into("y", staged=True))
    judge, rec = StagedJudge(st), record(ip(st, "x", "a"), ip(st, "y", "b"))
    judge.annotate(rec)
    assert rec["staged"]["wouldBe"] == "denied"
    assert "deny-in" in rec["staged"]["cause"] and rec["staged"]["cause"].startswith("ingress")
    # the endpoint decides, not the VIP; another namespace is not touched; IPv6 alike
    for r, want in ((record(ip(st, "x", "a"), "", endpoint=ip(st, "y", "c")), "denied"),
                    (record(ip(st, "x", "a"), ip(st, "z", "b")), None),
                    (record(ip(st, "x", "a", 6), ip(st, "y", "b", 6)), "denied")):
        judge.annotate(r)
        assert (r.get("staged") or {}).get("wouldBe") == want, r


def test_a_policy_drop_a_staged_accept_would_allow_says_so():
    st = state(deny_all_into("y", staged=False), admin("Accept", staged=True))
    dropped = record(ip(st, "x", "a"), ip(st, "y", "b"), "dropped",
                     decisions=[{"verdict": "dropped", "policies": ["deny-in"], "direction": "ingress"}])
    StagedJudge(st).annotate(dropped)
    assert dropped["staged"]["wouldBe"] == "allowed" and "admin-accept" in dropped["staged"]["cause"]


def test_a_staged_admin_deny_is_named_with_its_tier_and_rule():
    st = state(admin("Deny", staged=True))
    rec = record(ip(st, "x", "a"), ip(st, "y", "a"))
    StagedJudge(st).annotate(rec)
    assert rec["staged"]["wouldBe"] == "denied"
    assert "Admin" in rec["staged"]["cause"] and "admin-deny" in rec["staged"]["cause"]


def test_nothing_is_said_when_nothing_would_change_or_nothing_is_staged():
    st = state(deny_all_into("y", staged=True), deny_all_into("z", staged=False))
    judge = StagedJudge(st)
    for r in (record(ip(st, "y", "a"), ip(st, "x", "b")),  # x is not isolated by anything
              record(ip(st, "x", "a"), ip(st, "y", "b"), proto="ICMP", port=0),  # not judged
              record(ip(st, "x", "a"), ip(st, "y", "b"), "rejected")):  # no endpoints: not policy
        judge.annotate(r)
        assert "staged" not in r, r
    plain = state(deny_all_into("y", staged=False))
    assert not StagedJudge(plain).active
    r = record(ip(plain, "x", "a"), ip(plain, "y", "b"))
    StagedJudge(plain).annotate(r)
    assert "staged" not in r


def test_the_judge_keeps_its_own_copy_of_the_state():
    st = state(deny_all_into("y", staged=True))
    judge = StagedJudge(st)
    st.remove("NetworkPolicy", "y", "deny-in")  # the agent goes on changing its state
    rec = record(ip(judge.now, "x", "a"), ip(judge.now, "y", "b"))
    judge.annotate(rec)
    assert rec["staged"]["wouldBe"] == "denied"
