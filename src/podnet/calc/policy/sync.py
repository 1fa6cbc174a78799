"""Which policy chains a batch of changes can affect: the partial-sync planner. Pure.

A chain's content (calc/policy/compile.PolicyChain) depends on its policy, on the pods its
selector peers match, on namespace labels (namespaceSelector peers) and, through named
ports, on pods' container ports. Pods' memberships (which chains isolate them) are always
recomputed whole, so they need no planning.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from podnet.api.objects import ObjectKey, Pod, PolicyPeer, Resource
from podnet.api.selector import LabelSelector
from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import (EGRESS, INGRESS, NS_NAME_LABEL, ip_in_block, is_policy_pod,
                                namespace_labels)
from podnet.calc.policy.index import PodInfo, PolicyInfo, pod_info, policy_info


def affected_chains(state: ClusterState, changed: set[ObjectKey],
                    previous: Mapping[ObjectKey, Resource]) -> set[str]:
    """Chain ids (`ns/name/direction`) to recompile. `previous` holds Pods and Namespaces as
    they were at the last sync (to see what a change moved out of a selector).

    A relabel (same addresses and ports, only labels changed) touches a chain only when
    some selector of it decides differently for the old and the new labels: a chain is a
    function of which pods its selectors pick, so an unchanged pick is an unchanged chain."""
    out: set[str] = set()
    pods: list[Pod] = []  # changed in what a chain can read besides labels: either version counts
    relabels: list[tuple[PodInfo, PodInfo]] = []  # (old, new): only a changed pick counts
    ns_pairs: list[tuple[dict[str, str], dict[str, str]]] = []
    for k in changed:
        if k.kind == "NetworkPolicy":
            out |= {f"{k.namespace}/{k.name}/{d}" for d in (INGRESS, EGRESS)}
        elif k.kind == "Pod":
            new, old = state.get("Pod", k.namespace, k.name), previous.get(k)
            if (isinstance(new, Pod) and isinstance(old, Pod) and is_policy_pod(new) and is_policy_pod(old)
                    and new.node_name == old.node_name   # named ports resolve on the local pods
                    and (oi := pod_info(old)).canon == (ni := pod_info(new)).canon and oi.named == ni.named):
                if oi.labels != ni.labels:
                    relabels.append((oi, ni))
                continue
            pods.extend(o for o in (new, old) if isinstance(o, Pod))
        elif k.kind == "Namespace":
            # a namespace missing at the last sync was read as its name label alone
            old = previous.get(k)
            ns_pairs.append(({**(old.labels if old is not None else {}), NS_NAME_LABEL: k.name},
                             namespace_labels(state, k.name)))
    if not pods and not relabels and not ns_pairs:
        return out
    infos = [pod_info(p) for p in pods if is_policy_pod(p)]
    pod_ns = {i.ns: namespace_labels(state, i.ns) for i in infos}
    pod_ns.update((n.ns, namespace_labels(state, n.ns)) for _, n in relabels)
    # A relabel can change only what a selector reading one of the changed label keys
    # picks: the policies whose selectors read none are skipped without evaluating them.
    pod_keys = changed_keys((o.labels, n.labels) for o, n in relabels)
    ns_keys = changed_keys(ns_pairs)
    for np in state.policies:
        pi = policy_info(np)
        keys = read_keys(pi)
        for direction in pi.types:
            if (_touched(pi, direction, infos, pod_ns)
                    or ((not pod_keys.isdisjoint(keys[direction][0]) or not ns_keys.isdisjoint(keys[direction][1]))
                        and _pick_changed(pi, direction, relabels, pod_ns, ns_pairs))):
                out.add(f"{pi.ns}/{pi.name}/{direction}")
    return out


_ABSENT = object()


def changed_keys(pairs: Iterable[tuple[Mapping[str, str], Mapping[str, str]]]) -> frozenset[str]:
    """The label keys whose value (or presence) differs between the old and new labels of
    each pair: a selector reading none of them decides the same for both."""
    out: set[str] = set()
    for a, b in pairs:
        out.update(k for k in a.keys() | b.keys() if a.get(k, _ABSENT) != b.get(k, _ABSENT))
    return frozenset(out)


def selector_keys(sel: LabelSelector | None) -> frozenset[str]:
    """The label keys a selector reads (none: it decides the same for any labels)."""
    if sel is None or sel.selects_nothing:
        return frozenset()
    return frozenset(r.key for r in sel.requirements)


_KEYS: dict[int, tuple[PolicyInfo, dict[str, tuple[frozenset[str], frozenset[str]]]]] = {}


def read_keys(pi: PolicyInfo) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per direction, the pod label keys and the namespace label keys that a relabel check
    of the policy (_pick_changed) reads: its peers' podSelectors (and, with ingress named
    ports, its own podSelector) and its peers' namespaceSelectors. Memoised per policy."""
    hit = _KEYS.get(id(pi))
    if hit is not None and hit[0] is pi:
        return hit[1]
    if len(_KEYS) > 200_000:
        _KEYS.clear()
    out: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for direction in (INGRESS, EGRESS):
        pk: set[str] = set()
        nk: set[str] = set()
        for r in pi.rules[direction]:
            if direction == INGRESS and any(isinstance(pp.port, str) for pp in r.ports or ()):
                pk |= selector_keys(pi.selector)
            for pe in r.peers or ():
                if pe.ip_block is None:
                    pk |= selector_keys(pe.pod_selector)
                nk |= selector_keys(pe.namespace_selector)
        out[direction] = (frozenset(pk), frozenset(nk))
    _KEYS[id(pi)] = (pi, out)
    return out


def dirty_namespaces(changed: set[ObjectKey]) -> set[str]:
    """Namespaces where a pod or a policy changed: only their pods can change which
    policies select them (compile_policies keeps every other pod's memberships)."""
    return {k.namespace for k in changed if k.kind in ("Pod", "NetworkPolicy")}


def _pick_changed(pi: PolicyInfo, direction: str, relabels: list[tuple[PodInfo, PodInfo]],
                  pod_ns: dict[str, dict[str, str]],
                  ns_pairs: list[tuple[dict[str, str], dict[str, str]]]) -> bool:
    for r in pi.rules[direction]:
        named = any(isinstance(pp.port, str) for pp in r.ports or ())
        if named and direction == INGRESS and any(
                o.ns == pi.ns and pi.selector.matches(o.labels) != pi.selector.matches(n.labels)
                for o, n in relabels):
            return True  # ingress named ports resolve on the selected pods
        for pe in r.peers or ():
            if pe.namespace_selector is not None and any(
                    pe.namespace_selector.matches(a) != pe.namespace_selector.matches(b) for a, b in ns_pairs):
                return True
            if pe.ip_block is None and any(
                    _peer_selects(pi, pe, o, pod_ns) != _peer_selects(pi, pe, n, pod_ns) for o, n in relabels):
                return True
    return False


def _peer_selects(pi: PolicyInfo, pe: PolicyPeer, i: PodInfo, pod_ns: dict[str, dict[str, str]]) -> bool:
    """policy.peer_selects_pod over pre-parsed pods (this runs for every policy)."""
    if pe.pod_selector is None and pe.namespace_selector is None:
        return False
    if pe.namespace_selector is None:
        if i.ns != pi.ns:
            return False
    elif not pe.namespace_selector.matches(pod_ns[i.ns]):
        return False
    return pe.pod_selector is None or pe.pod_selector.matches(i.labels)


def _touched(pi: PolicyInfo, direction: str, pods: list[PodInfo],
             pod_ns: dict[str, dict[str, str]]) -> bool:
    if not pods:
        return False
    for r in pi.rules[direction]:
        named = any(isinstance(pp.port, str) for pp in r.ports or ())
        if named and direction == INGRESS and any(
                i.ns == pi.ns and pi.selector.matches(i.labels) for i in pods):
            return True  # ingress named ports resolve on the selected pods
        if r.peers is None:
            if named and direction == EGRESS and pods:
                return True  # resolved on every pod
            continue
        for pe in r.peers:
            if pe.ip_block is None and any(_peer_selects(pi, pe, i, pod_ns) for i in pods):
                return True
            if pe.ip_block is not None and named and direction == EGRESS and any(
                    ip_in_block(ip, pe.ip_block.cidr, pe.ip_block.except_) for i in pods for ip in i.canon):
                return True
    return False
