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
from dataclasses import dataclass
from typing import Iterable, Union

from podnet.api.objects import NetworkPolicy, Node, ObjectKey, Pod, PolicyPeer, PolicyPort, PolicyRule
from podnet.calc.model import ClusterState

INGRESS = "ingress"
EGRESS = "egress"
NS_NAME_LABEL = "kubernetes.io/metadata.name"

Address = Union[Pod, str]


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


# ---- shared matching ------------------------------------------------------------------
def namespace_labels(state: ClusterState, namespace: str) -> dict[str, str]:
    """A namespace's labels plus `kubernetes.io/metadata.name`, which the Kubernetes API
    server sets on every namespace (so selectors may rely on it even in bare manifests)."""
    ns = state.get("Namespace", "", namespace)
    labels = dict(ns.labels) if ns is not None else {}
    labels[NS_NAME_LABEL] = namespace
    return labels


def is_policy_pod(pod: Pod) -> bool:
    """hostNetwork pods share their node's IP: policies neither select nor name them."""
    return not pod.host_network and pod.deletion_timestamp is None


def has_type(np: NetworkPolicy, direction: str) -> bool:
    try:
        return direction.capitalize() in np.policy_types
    except (TypeError, AttributeError):
        return False


def rules_of(np: NetworkPolicy, direction: str) -> tuple[PolicyRule, ...]:
    """The rules of one direction; a malformed spec (validation normally rejects it) gives
    none: the policy still isolates what it selects and allows nothing (fail closed)."""
    try:
        return np.ingress if direction == INGRESS else np.egress
    except (TypeError, ValueError, AttributeError):
        return ()


def selects(np: NetworkPolicy, pod: Pod) -> bool:
    return np.namespace == pod.namespace and is_policy_pod(pod) and np.pod_selector.matches(pod.labels)


def isolating_policies(state: ClusterState, pod: Pod, direction: str) -> list[NetworkPolicy]:
    """The policies that isolate `pod` for `direction`, in a stable order."""
    out = [np for np in state.policies if has_type(np, direction) and selects(np, pod)]
    return sorted(out, key=lambda p: (p.namespace, p.name))


def peer_selects_pod(state: ClusterState, np: NetworkPolicy, peer: PolicyPeer, pod: Pod) -> bool:
    """podSelector / namespaceSelector of one peer (AND when both are present)."""
    if peer.pod_selector is None and peer.namespace_selector is None:
        return False
    if not is_policy_pod(pod):
        return False
    if peer.namespace_selector is None:
        ns_ok = pod.namespace == np.namespace
    else:
        ns_ok = peer.namespace_selector.matches(namespace_labels(state, pod.namespace))
    if not ns_ok:
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)


def valid_block(cidr: str, excepts: Iterable[str]) -> bool:
    """A bad ipBlock (validation normally rejects it) matches nothing, here and in the
    compiled form alike; it never stops the agent."""
    try:
        for c in (cidr, *excepts):
            ipaddress.ip_network(c, strict=False)
    except (ValueError, TypeError):
        return False
    return True


def ip_in_block(ip: str, cidr: str, excepts: Iterable[str]) -> bool:
    if not valid_block(cidr, excepts):
        return False
    a = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(cidr, strict=False)
    if a.version != net.version or a not in net:
        return False
    for e in excepts:
        en = ipaddress.ip_network(e, strict=False)
        if en.version == a.version and a in en:
            return False
    return True


def peer_matches(state: ClusterState, np: NetworkPolicy, peer: PolicyPeer,
                 pod: Pod | None, ip: str | None) -> bool:
    if peer.ip_block is not None:
        # podnet's choice (as Calico): an ipBlock matches pod IPs as well.
        return ip is not None and ip_in_block(ip, peer.ip_block.cidr, peer.ip_block.except_)
    return pod is not None and peer_selects_pod(state, np, peer, pod)


def resolve_port(pp: PolicyPort, named_on: Pod | None) -> tuple[int, int] | None:
    """The port range a PolicyPort stands for; a named port is looked up on `named_on`
    (the destination pod: for ingress the selected pod, for egress the peer)."""
    if pp.port is None:
        return (0, 65535)
    if isinstance(pp.port, int):
        return (pp.port, pp.end_port if pp.end_port is not None else pp.port)
    if named_on is None:
        return None
    n = named_on.named_port(pp.port, pp.protocol)
    return (n, n) if n is not None else None


def ports_match(ports: tuple[PolicyPort, ...] | None, port: int, protocol: str,
                named_on: Pod | None) -> bool:
    if ports is None:
        return True
    for pp in ports:
        if pp.protocol != protocol:
            continue
        r = resolve_port(pp, named_on)
        if r is not None and r[0] <= port <= r[1]:
            return True
    return False


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
