"""Would the staged policies change what happened to a flow? (issue 20 §2: flows record
"would be denied by staged X", as Calico's flow logs name pending policies.)

The kernel enforces only the policies in force; a staged one is never rendered. So, as
Calico's collector does for staged policies, each recorded flow between known addresses is
judged by calc's predicate twice: over the policies in force and over the same state with
the staged ones enforced (calc/policy/whatif.promoted). When the second verdict differs
from what the kernel did, the record gets `staged`: {"wouldBe": "denied" | "allowed",
"cause": what decides it then}. Judged: forwarded flows and policy drops, TCP/UDP/SCTP,
on the address and port after DNAT (the endpoint). Pure; one judge per agent sync, built
only when staged policies exist, memoising verdicts per (source, destination, port,
protocol).
"""
from __future__ import annotations

from typing import Any

from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import Verdict, allowed, pod_by_ip
from podnet.calc.policy.whatif import change_cause, promoted

POLICY_KINDS = ("Pod", "Namespace", "Node", "NetworkPolicy", "ClusterNetworkPolicy")
MEMO_CAP = 10_000


class StagedJudge:
    def __init__(self, state: ClusterState):
        self.active = bool(state.staged_policies)
        self._memo: dict[tuple[str, str, int, str], dict[str, str] | None] = {}
        if not self.active:
            return
        # a copy of what policy needs: the agent goes on changing its own state meanwhile
        self.now = ClusterState(node_name=state.node_name,
                                objects={k: dict(state.objects.get(k, {})) for k in POLICY_KINDS})
        self.then = promoted(self.now)
        self._now_ips, self._then_ips = pod_by_ip(self.now), pod_by_ip(self.then)

    def annotate(self, rec: dict[str, Any]) -> None:
        """Add `staged` to the record when enforcing the staged policies would change it."""
        if not self.active or rec.get("protocol") not in ("TCP", "UDP", "SCTP"):
            return
        if rec.get("verdict") == "forwarded":
            happened = True
        elif rec.get("verdict") == "dropped" and any(d.get("policy") or d.get("policies")
                                                     for d in rec.get("decisions", [])):
            happened = False
        else:
            return
        dst = rec.get("endpoint") or rec["destination"]
        key = (rec["source"]["ip"], dst["ip"], int(dst.get("port") or 0), rec["protocol"])
        if key not in self._memo:
            if len(self._memo) >= MEMO_CAP:
                self._memo.clear()
            self._memo[key] = self._judge(*key, happened)
        got = self._memo[key]
        if got is not None:
            rec["staged"] = dict(got)

    def _judge(self, src: str, dst: str, port: int, proto: str, happened: bool) -> dict[str, str] | None:
        family = 6 if ":" in src else 4
        now: Verdict = allowed(self.now, src, dst, port, proto, family, self._now_ips)
        then: Verdict = allowed(self.then, src, dst, port, proto, family, self._then_ips)
        if then.allowed == happened:
            return None
        cause = change_cause(now, then) if now.allowed != then.allowed else then.reason
        return {"wouldBe": "allowed" if then.allowed else "denied", "cause": cause}
