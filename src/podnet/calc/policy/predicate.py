"""Kubernetes NetworkPolicy semantics as a predicate: may this packet pass? Pure; imports api only.

`allowed(state, src, dst, port, protocol)` answers for one new connection and says which
policy rule decided, for `podnet trace` and `podnet describe`. The compiled per-pod form
the renderer uses lives in `compile.py` and is tested against this predicate.

Kubernetes semantics (networking.k8s.io/v1):
- a pod is isolated for ingress (egress) when some policy of its namespace selects it
  and lists that policy type; then only the union of those policies' rules passes;
- a connection passes when the source's egress side AND the destination's ingress side
  allow it; replies of an allowed connection always pass (conntrack, in the renderer).

Where Kubernetes leaves the choice to the implementation, podnet decides (see
docs/design/policy.md): traffic between a pod and its own node passes; a pod talking
to itself passes (it never leaves the pod); ipBlock matches pod IPs too; traffic to a
Service VIP is judged after DNAT, so callers pass the chosen endpoint as `dst`;
hostNetwork pods are not pods for policy (they are their node's IP).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Iterable, Union

from podnet.api.objects import NetworkPolicy, Node, ObjectKey, Pod, PolicyPeer, PolicyPort, PolicyRule
from podnet.api.cluster_policy import ACCEPT, ADMIN, BASELINE, PASS
from podnet.calc.model import ClusterState
from podnet.calc.policy.tiers import ClusterRuleRef, tier_decision

# the shared matching moved to match.py; these names stay importable from here
from podnet.calc.policy.match import (EGRESS, INGRESS, NS_NAME_LABEL, has_type, ip_in_block,  # noqa: F401
                                      is_policy_pod, isolating_policies, namespace_labels,
                                      peer_matches, peer_selects_pod, ports_match, resolve_port,
                                      rules_of, selects, valid_block)

Address = Union[Pod, str]
__all__ = [
    "Address", "EGRESS", "INGRESS", "NS_NAME_LABEL", "RuleRef", "SideVerdict", "Verdict",
    "allowed", "has_type", "ip_in_block", "is_policy_pod", "isolating_policies",
    "namespace_labels", "peer_matches", "peer_selects_pod", "pod_addresses", "pod_by_ip",
    "pod_ip", "policies_for_pod", "ports_match", "resolve_port", "rules_of", "selects",
    "valid_block",
]


@dataclass(frozen=True)
class RuleRef:
    """One rule of one policy, in one direction: also the name of its nft counter."""
    namespace: str
    policy: str
    direction: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.policy}/{self.direction}/{self.index}"


@dataclass(frozen=True)
class SideVerdict:
    """The verdict of one side (egress of the source or ingress of the destination)."""
    direction: str
    isolated: bool
    allowed: bool
    rule: RuleRef | None = None  # the first rule that allowed, when isolated and allowed
    policies: tuple[str, ...] = ()  # "ns/name" of the policies isolating this side
    reason: str = ""
    # the tier that decided: "Admin" / "Baseline" (a cluster rule, `cluster_rule`),
    # "NetworkPolicy" (v1 isolated the pod) or "" (nothing did: default allow)
    tier: str = ""
    cluster_rule: ClusterRuleRef | None = None
    passed: tuple[ClusterRuleRef, ...] = ()  # Pass rules on the way (Admin, then Baseline)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: SideVerdict
    ingress: SideVerdict

    @property
    def reason(self) -> str:
        if self.allowed:
            return f"egress: {self.egress.reason}; ingress: {self.ingress.reason}"
        side = self.egress if not self.egress.allowed else self.ingress
        return f"{side.direction}: {side.reason}"


# ---- the predicate --------------------------------------------------------------------
def pod_addresses(pod: Pod) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The pod's addresses; a malformed one is skipped (it can carry no traffic)."""
    out = []
    for ip in pod.pod_ips:
        try:
            out.append(ipaddress.ip_address(ip))
        except ValueError:
            continue
    return out


def pod_by_ip(state: ClusterState) -> dict[str, Pod]:
    out: dict[str, Pod] = {}
    for p in state.pods:
        if is_policy_pod(p):
            for a in pod_addresses(p):
                out[str(a)] = p
    return out


def pod_ip(pod: Pod, family: int) -> str | None:
    return next((str(a) for a in pod_addresses(pod) if a.version == family), None)


def _endpoint(state: ClusterState, x: Address, family: int,
              by_ip: dict[str, Pod] | None) -> tuple[Pod | None, str | None]:
    if isinstance(x, Pod):
        return (x if is_policy_pod(x) else None), pod_ip(x, family)
    ip = str(ipaddress.ip_address(x))
    return (by_ip if by_ip is not None else pod_by_ip(state)).get(ip), ip


def _node_ips(state: ClusterState, node_name: str) -> set[str]:
    node = state.get("Node", "", node_name)
    return {str(ipaddress.ip_address(a)) for a in node.internal_ips if a} if isinstance(node, Node) else set()


def _side(state: ClusterState, direction: str, subject: Pod, peer_pod: Pod | None,
          peer_ip: str | None, port: int, protocol: str) -> SideVerdict:
    """Admin tier, then NetworkPolicy v1, then Baseline tier, then allow (tiers.py)."""
    passed: list[ClusterRuleRef] = []
    admin = tier_decision(state, ADMIN, direction, subject, peer_pod, peer_ip, port, protocol)
    if admin is not None and admin.action != PASS:
        return _cluster_side(direction, admin, ())
    if admin is not None:
        passed.append(admin)
    v1 = _v1_side(state, direction, subject, peer_pod, peer_ip, port, protocol)
    if v1.isolated:
        return replace(v1, tier="NetworkPolicy", passed=tuple(passed))
    base = tier_decision(state, BASELINE, direction, subject, peer_pod, peer_ip, port, protocol)
    if base is not None and base.action != PASS:
        return _cluster_side(direction, base, tuple(passed))
    if base is not None:
        passed.append(base)
    if passed:
        return replace(v1, reason="; ".join(p.text for p in passed) + "; then allowed by default",
                       passed=tuple(passed))
    return v1


def _cluster_side(direction: str, ref: ClusterRuleRef, passed: tuple[ClusterRuleRef, ...]) -> SideVerdict:
    ok = ref.action == ACCEPT
    why = "; ".join(p.text for p in (*passed, ref))
    return SideVerdict(direction, True, ok, None, (f"cnp/{ref.policy}",),
                       f"{'allowed' if ok else 'denied'} by {why}", ref.tier, ref, passed)


def _v1_side(state: ClusterState, direction: str, subject: Pod, peer_pod: Pod | None,
             peer_ip: str | None, port: int, protocol: str) -> SideVerdict:
    pols = isolating_policies(state, subject, direction)
    names = tuple(f"{p.namespace}/{p.name}" for p in pols)
    if not pols:
        return SideVerdict(direction, False, True, None, (), "not isolated")
    named_on = subject if direction == INGRESS else peer_pod
    for np in pols:
        for i, rule in enumerate(rules_of(np, direction)):
            if rule.peers is not None and not any(
                    peer_matches(state, np, pe, peer_pod, peer_ip) for pe in rule.peers):
                continue
            if not ports_match(rule.ports, port, protocol, named_on):
                continue
            ref = RuleRef(np.namespace, np.name, direction, i)
            return SideVerdict(direction, True, True, ref, names, f"allowed by {ref.name}")
    return SideVerdict(direction, True, False, None, names,
                       f"isolated by {', '.join(names)}; no rule allows")


def allowed(state: ClusterState, src: Address, dst: Address, port: int,
            protocol: str = "TCP", family: int = 4,
            by_ip: dict[str, Pod] | None = None) -> Verdict:
    """May a new connection from `src` to `dst` port/protocol pass? `src`/`dst` are pods
    or IP addresses (an IP of a known pod is that pod). `family` picks a pod's address
    when a pod is given. `by_ip` is an optional precomputed `pod_by_ip(state)`."""
    spod, sip = _endpoint(state, src, family, by_ip)
    dpod, dip = _endpoint(state, dst, family, by_ip)
    open_ = SideVerdict(EGRESS, False, True, None, (), "not a pod")
    if spod is not None and dpod is not None and spod.key == dpod.key:
        e = SideVerdict(EGRESS, False, True, None, (), "to itself (never leaves the pod)")
        return Verdict(True, e, SideVerdict(INGRESS, False, True, None, (), e.reason))
    if spod is not None and dip is not None and dip in _node_ips(state, spod.node_name):
        eg = SideVerdict(EGRESS, False, True, None, (), "to its own node (always allowed)")
    elif spod is not None:
        eg = _side(state, EGRESS, spod, dpod, dip, port, protocol)
    else:
        eg = open_
    if dpod is not None and sip is not None and sip in _node_ips(state, dpod.node_name):
        ing = SideVerdict(INGRESS, False, True, None, (), "from its own node (always allowed)")
    elif dpod is not None:
        ing = _side(state, INGRESS, dpod, spod, sip, port, protocol)
    else:
        ing = SideVerdict(INGRESS, False, True, None, (), "not a pod")
    return Verdict(eg.allowed and ing.allowed, eg, ing)


def policies_for_pod(state: ClusterState, pod: Pod) -> dict[str, list[NetworkPolicy]]:
    """For `podnet describe pod`: the policies isolating the pod, per direction."""
    return {d: isolating_policies(state, pod, d) for d in (INGRESS, EGRESS)}
