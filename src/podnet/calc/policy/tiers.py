"""ClusterNetworkPolicy tiers as a predicate: which cluster rule decides one side of a
connection. Pure; imports api only.

Upstream's evaluation (policy.networking.k8s.io/v1alpha2), per side (the source's egress,
the destination's ingress), each side on its own:
1. Admin tier: the policies whose subject selects the pod, by priority (lower first);
   within a policy its rules in order. The first rule whose peers and protocols match
   decides: Accept and Deny are final, Pass skips the rest of the Admin tier.
2. NetworkPolicy v1 (predicate.py): if it isolates the pod, it decides (final).
3. Baseline tier, as Admin; Pass (or no match) leaves the default.
4. Default: allow.
Equal priorities: upstream leaves the order of two policies with the same priority to the
implementation; podnet orders them by name (`metadata.name`, ascending), so the outcome is
deterministic and the same in calc and nftables (docs/design/policy-tiers.md).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.api.cluster_policy import ADMIN, BASELINE, ClusterNetworkPolicy, ClusterRule
from podnet.api.objects import Node, Pod
from podnet.api.selector import LabelSelector
from podnet.calc.model import ClusterState
from podnet.calc.policy.match import INGRESS, is_policy_pod, namespace_labels, peer_matches, ports_match

TIER_ORDER = (ADMIN, BASELINE)


@dataclass(frozen=True)
class ClusterRuleRef:
    """One rule of one ClusterNetworkPolicy in one direction: what decided, for trace,
    describe and the nft counter (`cnp/<policy>/<direction>/<index>`)."""
    tier: str
    policy: str
    direction: str
    index: int
    action: str
    rule_name: str = ""

    @property
    def name(self) -> str:
        return f"cnp/{self.policy}/{self.direction}/{self.index}"

    @property
    def text(self) -> str:
        named = f" ({self.rule_name})" if self.rule_name else ""
        return (f"{self.tier} tier, ClusterNetworkPolicy {self.policy}, {self.direction} rule "
                f"{self.index}{named}: {self.action}")


_RULES: dict[int, tuple[ClusterNetworkPolicy, dict[str, tuple[ClusterRule, ...]]]] = {}


def rules_in(cnp: ClusterNetworkPolicy, direction: str) -> tuple[ClusterRule, ...]:
    """A malformed spec (validation normally rejects it) gives no rules. Memoised per
    object (objects are replaced, never changed, on an update): parsing dominates a sync."""
    hit = _RULES.get(id(cnp))
    if hit is None or hit[0] is not cnp:  # the memo holds cnp, so its id cannot be reused
        if len(_RULES) > 100_000:
            _RULES.clear()
        parsed: dict[str, tuple[ClusterRule, ...]] = {}
        for d in (INGRESS, "egress"):
            try:
                parsed[d] = cnp.ingress if d == INGRESS else cnp.egress
            except (TypeError, ValueError, AttributeError, KeyError):
                parsed[d] = ()
        hit = _RULES[id(cnp)] = (cnp, parsed)
    return hit[1][direction]


_SUBJECT: dict[int, tuple[ClusterNetworkPolicy, tuple[LabelSelector, LabelSelector]]] = {}


def subject_of(cnp: ClusterNetworkPolicy) -> tuple[LabelSelector, LabelSelector]:
    """`cnp.subject`, memoised per object as rules_in (raises as it does)."""
    hit = _SUBJECT.get(id(cnp))
    if hit is None or hit[0] is not cnp:
        if len(_SUBJECT) > 100_000:
            _SUBJECT.clear()
        hit = _SUBJECT[id(cnp)] = (cnp, cnp.subject)
    return hit[1]


def subject_selects(state: ClusterState, cnp: ClusterNetworkPolicy, pod: Pod,
                    ns_labels: dict[str, str] | None = None) -> bool:
    if not is_policy_pod(pod):
        return False  # host-networked pods are not subjects (upstream)
    ns_sel, pod_sel = subject_of(cnp)
    labels = ns_labels if ns_labels is not None else namespace_labels(state, pod.namespace)
    return ns_sel.matches(labels) and pod_sel.matches(pod.labels)


def tier_key(cnp: ClusterNetworkPolicy) -> tuple[int, int, str]:
    """The order of evaluation: tier, then priority, then name (the tie rule)."""
    try:
        prio = cnp.priority
    except (TypeError, ValueError):
        prio = 1 << 20
    return (TIER_ORDER.index(cnp.tier) if cnp.tier in TIER_ORDER else 9, prio, cnp.name)


def tier_policies(state: ClusterState, pod: Pod, direction: str, tier: str) -> list[ClusterNetworkPolicy]:
    """The policies of `tier` selecting `pod` with rules for `direction`, in evaluation order."""
    out = [c for c in state.cluster_policies
           if c.tier == tier and rules_in(c, direction) and subject_selects(state, c, pod)]
    return sorted(out, key=tier_key)


def node_addresses(state: ClusterState, selectors: tuple[LabelSelector, ...]) -> set[str]:
    """The addresses (status.addresses) of the nodes any of `selectors` picks."""
    out: set[str] = set()
    for n in state.nodes:
        if isinstance(n, Node) and any(s.matches(n.labels) for s in selectors):
            for a in n.internal_ips:
                try:
                    out.add(str(ipaddress.ip_address(a)))
                except ValueError:
                    continue
    return out


def rule_matches(state: ClusterState, cnp: ClusterNetworkPolicy, rule: ClusterRule, direction: str,
                 subject: Pod, peer_pod: Pod | None, peer_ip: str | None, port: int, protocol: str) -> bool:
    r = rule.rule
    peer_ok = any(peer_matches(state, cnp, pe, peer_pod, peer_ip) for pe in r.peers or ())
    if not peer_ok and rule.nodes and peer_ip is not None:
        peer_ok = peer_ip in node_addresses(state, rule.nodes)
    if not peer_ok:
        return False
    return ports_match(r.ports, port, protocol, subject if direction == INGRESS else peer_pod)


def tier_decision(state: ClusterState, tier: str, direction: str, subject: Pod, peer_pod: Pod | None,
                  peer_ip: str | None, port: int, protocol: str) -> ClusterRuleRef | None:
    """The first rule of `tier` that matches (its action says what it decided), or None."""
    for cnp in tier_policies(state, subject, direction, tier):
        for i, rule in enumerate(rules_in(cnp, direction)):
            if rule_matches(state, cnp, rule, direction, subject, peer_pod, peer_ip, port, protocol):
                return ClusterRuleRef(tier, cnp.name, direction, i, rule.action, rule.name)
    return None


def cluster_policies_for_pod(state: ClusterState, pod: Pod) -> list[ClusterNetworkPolicy]:
    """For `podnet describe pod`: every cluster policy whose subject selects the pod, in
    evaluation order."""
    return sorted((c for c in state.cluster_policies if subject_selects(state, c, pod)), key=tier_key)
