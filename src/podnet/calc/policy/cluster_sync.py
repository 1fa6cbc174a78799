"""Which ClusterNetworkPolicy chains and which pods' tier lists a batch of changes can
affect: the cluster half of the partial-sync planner (sync.py is the NetworkPolicy half).
Pure; imports api only.

A cluster chain (cluster_compile.ClusterChain) is a function of its policy, of the pods
and namespaces its peers pick (their addresses), of Nodes (`nodes` peers), of container
ports (named ports: ingress on the subject's pods, egress on the peer pods) and, for
ingress named ports, of which pods its subject selects. Whether it exists at all (some
local pod selected) compile_cluster decides on every sync from the index, cheaply.
A pod's tier lists (which policies select it, in evaluation order) are a function of its
own labels, its namespace's labels and the cluster policies: they change only for pods
that changed, pods of relabelled namespaces, and the pods a changed policy selected
before or selects now (compile_cluster adds those: it knows both).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from podnet.api.cluster_policy import ClusterNetworkPolicy
from podnet.api.objects import ObjectKey, Pod, PolicyPeer, Resource
from podnet.api.selector import LabelSelector
from podnet.calc.model import ClusterState
from podnet.calc.policy.index import PodInfo, pod_info
from podnet.calc.policy.match import EGRESS, INGRESS, NS_NAME_LABEL, ip_in_block, is_policy_pod, namespace_labels
from podnet.calc.policy.sync import changed_keys, selector_keys
from podnet.calc.policy.tiers import rules_in, subject_of


@dataclass
class ClusterPlan:
    """What a partial sync recompiles of the cluster tier. `recompile`: policy names whose
    chains are compiled again (every other policy's chains are the last sync's);
    `changed`: policies that changed themselves (their old and new subjects' pods are
    relisted); `relist`: pods whose tier lists are recomputed; `namespaces`: namespaces
    whose every pod is relisted."""
    recompile: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)
    relist: set[ObjectKey] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)


def plan_cluster(state: ClusterState, changed: set[ObjectKey],
                 previous: Mapping[ObjectKey, Resource]) -> ClusterPlan:
    """The plan for `changed` (keys of any kind); `previous` holds Pods and Namespaces as
    they were at the last sync, as for sync.affected_chains."""
    plan = ClusterPlan()
    pods: list[PodInfo] = []  # changed in addresses, ports or node (or came, or went): either version counts
    relabels: list[tuple[PodInfo, PodInfo]] = []  # only labels changed: only a changed pick counts
    ns_pairs: list[tuple[dict[str, str], dict[str, str]]] = []
    nodes = False
    for k in changed:
        if k.kind == "ClusterNetworkPolicy":
            plan.recompile.add(k.name)
            plan.changed.add(k.name)
        elif k.kind == "Node":
            nodes = True
        elif k.kind == "Pod":
            plan.relist.add(k)
            new, old = state.get("Pod", k.namespace, k.name), previous.get(k)
            ni = pod_info(new) if isinstance(new, Pod) and is_policy_pod(new) else None
            oi = pod_info(old) if isinstance(old, Pod) and is_policy_pod(old) else None
            # same addresses, ports and node (ingress named ports resolve on the local pods
            # of a policy's subject): only a changed pick of the labels can count
            if (ni is not None and oi is not None and oi.canon == ni.canon and oi.named == ni.named
                    and ni.pod.node_name == oi.pod.node_name):
                if oi.labels != ni.labels:
                    relabels.append((oi, ni))
                continue
            pods.extend(i for i in (ni, oi) if i is not None)
        elif k.kind == "Namespace":
            plan.namespaces.add(k.name)
            old = previous.get(k)  # a namespace missing at the last sync was read as its name label alone
            ns_pairs.append(({**(old.labels if old is not None else {}), NS_NAME_LABEL: k.name},
                             namespace_labels(state, k.name)))
    if not (pods or relabels or ns_pairs or nodes):
        return plan
    ns_of = {i.ns: namespace_labels(state, i.ns) for i in pods}
    ns_of.update((n.ns, namespace_labels(state, n.ns)) for _, n in relabels)
    # Only relabels (of pods or namespaces): a policy none of whose selectors reads a
    # changed label key picks the same pods (sync.changed_keys), so it is not evaluated.
    only_labels = not pods and not nodes
    pod_keys = changed_keys((o.labels, n.labels) for o, n in relabels)
    ns_keys = changed_keys(ns_pairs)
    for cnp in state.cluster_policies:
        if cnp.name in plan.recompile:
            continue
        if only_labels:
            keys = _read_keys(cnp)
            if keys is not None and pod_keys.isdisjoint(keys[0]) and ns_keys.isdisjoint(keys[1]):
                continue
        if _affected(cnp, pods, relabels, ns_pairs, ns_of, nodes):
            plan.recompile.add(cnp.name)
    return plan


_KEYS: dict[int, tuple[ClusterNetworkPolicy, tuple[frozenset[str], frozenset[str]] | None]] = {}


def _read_keys(cnp: ClusterNetworkPolicy) -> tuple[frozenset[str], frozenset[str]] | None:
    """The pod and the namespace label keys that _affected's relabel checks read (peers'
    selectors; the subject's, with ingress named ports); None for a malformed policy
    (always evaluated). Memoised per object."""
    hit = _KEYS.get(id(cnp))
    if hit is not None and hit[0] is cnp:
        return hit[1]
    if len(_KEYS) > 100_000:
        _KEYS.clear()
    out: tuple[frozenset[str], frozenset[str]] | None
    try:
        subject = subject_of(cnp)
        pk: set[str] = set()
        nk: set[str] = set()
        for direction in (INGRESS, EGRESS):
            for cr in rules_in(cnp, direction):
                if direction == INGRESS and any(isinstance(pp.port, str) for pp in cr.rule.ports or ()):
                    nk |= selector_keys(subject[0])
                    pk |= selector_keys(subject[1])
                for pe in cr.rule.peers or ():
                    if pe.ip_block is None:
                        pk |= selector_keys(pe.pod_selector)
                        nk |= selector_keys(pe.namespace_selector)
        out = (frozenset(pk), frozenset(nk))
    except (TypeError, ValueError, AttributeError, KeyError):
        out = None
    _KEYS[id(cnp)] = (cnp, out)
    return out


def _selects(sel: tuple[LabelSelector, LabelSelector], i: PodInfo, ns_of: dict[str, dict[str, str]]) -> bool:
    return sel[0].matches(ns_of[i.ns]) and sel[1].matches(i.labels)


def _peer(pe: PolicyPeer, i: PodInfo, ns_of: dict[str, dict[str, str]]) -> bool:
    """Whether a selector peer of a cluster rule picks the pod (cluster peers always carry
    a namespaceSelector: `namespaces` alone, or `pods` with both)."""
    if pe.ip_block is not None or pe.namespace_selector is None:
        return False
    return pe.namespace_selector.matches(ns_of[i.ns]) and (pe.pod_selector is None or pe.pod_selector.matches(i.labels))


def _affected(cnp: ClusterNetworkPolicy, pods: list[PodInfo], relabels: list[tuple[PodInfo, PodInfo]],
              ns_pairs: list[tuple[dict[str, str], dict[str, str]]], ns_of: dict[str, dict[str, str]],
              nodes: bool) -> bool:
    try:
        subject = subject_of(cnp)
        rules = {d: rules_in(cnp, d) for d in (INGRESS, EGRESS)}
    except (TypeError, ValueError, AttributeError, KeyError):
        return True  # malformed: compile reports it
    for direction, crs in rules.items():
        for cr in crs:
            r = cr.rule
            if nodes and cr.nodes:
                return True
            named = any(isinstance(pp.port, str) for pp in r.ports or ())
            if named and direction == INGRESS and (  # resolved on the subject's pods
                    any(_selects(subject, i, ns_of) for i in pods)
                    or any(_selects(subject, o, ns_of) != _selects(subject, n, ns_of) for o, n in relabels)
                    or any(subject[0].matches(a) != subject[0].matches(b) for a, b in ns_pairs)):
                return True
            if r.peers is None:
                if pods and (named and direction == EGRESS):
                    return True  # resolved on every pod
                continue
            for pe in r.peers:
                if pe.ip_block is not None:
                    if named and direction == EGRESS and any(
                            ip_in_block(ip, pe.ip_block.cidr, pe.ip_block.except_) for i in pods for ip in i.canon):
                        return True
                    continue
                if any(_peer(pe, i, ns_of) for i in pods):
                    return True
                if any(_peer(pe, o, ns_of) != _peer(pe, n, ns_of) for o, n in relabels):
                    return True
                if pe.namespace_selector is not None and any(
                        pe.namespace_selector.matches(a) != pe.namespace_selector.matches(b) for a, b in ns_pairs):
                    return True
    return False
