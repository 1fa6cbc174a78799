"""What would change: the reachability cells that differ between two cluster states, and
the policy rule behind each change (issue 20 §3, `podnet analyze --with/--diff`). Pure.

Pods are matched by `namespace/name` in both states (their addresses may differ); a pod
present on one side only has no cells. Each change names, for every side (egress of the
source, ingress of the destination) whose verdict flipped, what decides it afterwards
(or, when the decision went away, what decided it before): the tier, policy, rule and
action, as `predicate.Verdict` explains it. `promoted(state)` is the state with its staged
policies enforced (issue 20 §2), so `changes(state, promoted(state), ...)` is what they
would change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.api.objects import Pod, from_dict
from podnet.api.policy import STAGED_ANNOTATION
from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import Verdict, allowed, pod_by_ip
from podnet.calc.policy.table import pod_label


@dataclass(frozen=True)
class CellChange:
    source: str
    target: str
    port: int
    protocol: str
    family: int
    before: bool
    after: bool
    cause: str

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "port": self.port, "protocol": self.protocol,
                "family": self.family, "before": self.before, "after": self.after, "cause": self.cause}

    def text(self) -> str:
        word = {True: "allowed", False: "denied"}
        return f"{self.source} -> {self.target}: {word[self.before]} -> {word[self.after]} ({self.cause})"


def promoted(state: ClusterState) -> ClusterState:
    """The same state with every staged policy enforced (its annotation removed)."""
    out = ClusterState(node_name=state.node_name,
                       objects={k: dict(v) for k, v in state.objects.items()})
    for o in state.staged_policies:
        ann = {k: v for k, v in o.annotations.items() if k != STAGED_ANNOTATION}
        d = o.to_dict()
        d["metadata"]["annotations"] = ann
        out.put(from_dict(d))
    return out


def change_cause(before: Verdict, after: Verdict) -> str:
    """What made the verdict flip, per side that flipped (what decides afterwards, or what
    no longer decides)."""
    out = []
    for b, a in ((before.egress, after.egress), (before.ingress, after.ingress)):
        if b.allowed != a.allowed:
            side = a if (a.isolated or a.passed) else b
            out.append(f"{a.direction}: {side.reason}" if side is a else f"{a.direction}: no longer {b.reason}")
    return "; ".join(out)


def _pods(state: ClusterState, namespace: str | None) -> dict[str, Pod]:
    return {pod_label(p): p for p in state.pods if p.pod_ips and (namespace is None or p.namespace == namespace)}


def changes(before: ClusterState, after: ClusterState, port: int, protocol: str = "TCP", family: int = 4,
            namespace: str | None = None, targets: list[str] | None = None) -> list[CellChange]:
    """Cells (source pod -> target pod, or -> each address of `targets`) whose verdict differs."""
    bp, ap = _pods(before, namespace), _pods(after, namespace)
    common = sorted(set(bp) & set(ap))
    bip, aip = pod_by_ip(before), pod_by_ip(after)
    out: list[CellChange] = []
    for s in common:
        dsts: list[tuple[str, Pod | str, Pod | str]] = (
            [(t, t, t) for t in targets] if targets else [(d, bp[d], ap[d]) for d in common])
        for label, bd, ad in dsts:
            vb = allowed(before, bp[s], bd, port, protocol, family, bip)
            va = allowed(after, ap[s], ad, port, protocol, family, aip)
            if vb.allowed != va.allowed:
                out.append(CellChange(s, label, port, protocol, family, vb.allowed, va.allowed, change_cause(vb, va)))
    return out
