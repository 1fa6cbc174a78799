"""Matching shared by NetworkPolicy and ClusterNetworkPolicy: which pods a peer picks, whether
an address is in a block, whether a port matches. Pure; imports api only.

predicate.py (v1 sides) and tiers.py (cluster tiers) both read these; predicate re-exports
them under their old names.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from podnet.api.objects import NetworkPolicy, Pod, PolicyPeer, PolicyPort, PolicyRule, Resource
from podnet.calc.model import ClusterState

INGRESS = "ingress"
EGRESS = "egress"
NS_NAME_LABEL = "kubernetes.io/metadata.name"


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


def peer_selects_pod(state: ClusterState, np: Resource, peer: PolicyPeer, pod: Pod) -> bool:
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


def peer_matches(state: ClusterState, np: Resource, peer: PolicyPeer,
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
