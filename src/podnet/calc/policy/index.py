"""The pod index calc/policy/compile reads: pods and policies parsed once, selectors
evaluated without scanning every pod, results memoised per sync and, for partial syncs,
carried over (`pod_index`) and updated in place for what changed. Pure; imports api only.
"""
from __future__ import annotations

import bisect
import hashlib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from podnet.api.defaults import NETNS_ANNOTATION as LAB_NETNS_ANNOTATION
from podnet.api.objects import NetworkPolicy, ObjectKey, Pod, PolicyPeer, PolicyRule
from podnet.api.selector import LabelSelector
from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import EGRESS, INGRESS, has_type, is_policy_pod, namespace_labels, pod_addresses, rules_of

FAMILIES = (4, 6)

IFACE_ANNOTATION = "podnet.io/host-veth"


def host_iface(pod: Pod) -> str:
    """The pod's host-side veth: as recorded (annotation), else, for a pod the lab kubelet
    wired (it passes the pod uid as the CNI container id, interface eth0), the name
    podnet-cni derives: `pn` + sha256("<container id>/<ifname>")[:11] (dataplane/net/podwire.host_ifname;
    calc may not import cni, a unit test keeps the two equal). "" when unknown: then the
    pod is not in the anti-spoofing sets (never a false drop)."""
    rec = pod.annotations.get(IFACE_ANNOTATION)
    if rec:
        return rec
    if pod.uid and pod.annotations.get(LAB_NETNS_ANNOTATION):
        return "pn" + hashlib.sha256(f"{pod.uid}/eth0".encode()).hexdigest()[:11]
    return ""


# ---- pod index: selector evaluation without scanning every pod per selector -----------
@dataclass
class PodInfo:
    """What compile reads of a pod, parsed once per pod object (Resource accessors and
    address parsing dominate a sync at scale)."""
    pod: Pod
    ns: str
    name: str
    labels: dict[str, str]
    ips: list[tuple[int, int]]
    canon: tuple[str, ...]
    named: dict[tuple[str, str], int]
    iface: str


_INFO: dict[int, PodInfo] = {}


def pod_info(p: Pod) -> PodInfo:
    hit = _INFO.get(id(p))
    if hit is not None and hit.pod is p:  # the memo holds p, so its id cannot be reused
        return hit
    if len(_INFO) > 500_000:
        _INFO.clear()
    parsed = [_parse(str(a)) for a in pod_addresses(p)]
    info = _INFO[id(p)] = PodInfo(
        p, p.namespace, p.name, p.labels, [(f, v) for f, v, _ in parsed], tuple(c for _, _, c in parsed),
        {(cp.name, cp.protocol): cp.container_port for cp in reversed(p.ports) if cp.name},
        host_iface(p))
    return info


@dataclass
class PolicyInfo:
    np: NetworkPolicy
    ns: str
    name: str
    selector: LabelSelector
    types: tuple[str, ...]
    rules: dict[str, tuple[PolicyRule, ...]]


_PINFO: dict[int, PolicyInfo] = {}


def policy_info(np: NetworkPolicy) -> PolicyInfo:
    hit = _PINFO.get(id(np))
    if hit is not None and hit.np is np:
        return hit
    if len(_PINFO) > 200_000:
        _PINFO.clear()
    info = _PINFO[id(np)] = PolicyInfo(np, np.namespace, np.name, np.pod_selector,
                                       tuple(d for d in (INGRESS, EGRESS) if has_type(np, d)),
                                       {d: rules_of(np, d) for d in (INGRESS, EGRESS)})
    return info


class PodIndex:
    def __init__(self, state: ClusterState):
        self.state = state
        infos = sorted((pod_info(p) for p in state.pods if is_policy_pod(p)), key=lambda i: (i.ns, i.name))
        self.pods = [i.pod for i in infos]
        self.info: dict[int, PodInfo] = {id(i.pod): i for i in infos}
        self.by_ns: dict[str, list[Pod]] = defaultdict(list)
        self.by_label: dict[tuple[str, str, str], list[Pod]] = defaultdict(list)
        self.ips: dict[int, list[tuple[int, int]]] = {}
        self.named: dict[int, dict[tuple[str, str], int]] = {}
        for i in infos:
            self.ips[id(i.pod)] = i.ips
            self.named[id(i.pod)] = i.named
            self.by_ns[i.ns].append(i.pod)
            for kv in i.labels.items():
                self.by_label[(i.ns,) + kv].append(i.pod)
        self.ns_labels = {ns: namespace_labels(state, ns)
                          for ns in set(self.by_ns) | {n.name for n in state.namespaces}}
        self._cache: dict[str, dict[LabelSelector, list[Pod]]] = {}  # namespace -> selector -> pods
        self._subjects: dict[tuple[LabelSelector, LabelSelector], list[Pod]] = {}
        self._local_subjects: dict[tuple[LabelSelector, LabelSelector], tuple[list[Pod], set[int]]] = {}
        self._local_ids: set[int] = set()
        self._peer_ips: dict[str, dict[int, frozenset[int]]] = {}
        # what each _peer_ips key reads: (namespace or None for any, namespaceSelector, podSelector)
        self._peer_sels: dict[str, list[tuple[str | None, LabelSelector | None, LabelSelector]]] = {}
        self.named_memo: dict[tuple[str, tuple[Any, ...]], dict[int, tuple[tuple[int, str, int], ...]]] = {}

    def refresh_namespaces(self, names: set[str]) -> None:
        """Namespace labels changed: selections of pods within a namespace stay; of the
        results that read namespace labels, those whose namespaceSelector decides
        differently for a relabelled namespace's old and new labels go (a selector that
        decides the same picks the same pods)."""
        flips: list[tuple[dict[str, str] | None, dict[str, str] | None]] = []
        for ns in names:
            old = self.ns_labels.get(ns)
            if ns in self.by_ns or self.state.get("Namespace", "", ns) is not None:
                self.ns_labels[ns] = namespace_labels(self.state, ns)
            else:
                self.ns_labels.pop(ns, None)
            new = self.ns_labels.get(ns)
            if old != new:
                flips.append((old, new))
        if not flips:
            return

        def moved(ns_sel: LabelSelector | None) -> bool:
            return ns_sel is not None and any(
                (o is not None and ns_sel.matches(o)) != (n is not None and ns_sel.matches(n)) for o, n in flips)
        self._drop_subjects(lambda ns_sel, pod_sel: moved(ns_sel))
        self._drop_peer_ips(lambda ns, ns_sel, pod_sel: moved(ns_sel))
        # a NetworkPolicy's ingress named ports resolve on the pods it selects, whatever the
        # namespace labels; a ClusterNetworkPolicy's subject reads them (cluster_compile)
        self.named_memo = {k: v for k, v in self.named_memo.items()
                           if k[0].startswith("in ") and not k[0].startswith("in ('cnp',")}

    def _drop_subjects(self, stale: Callable[..., bool]) -> None:
        for key in [k for k in self._subjects if stale(*k)]:
            del self._subjects[key]
        for key in [k for k in self._local_subjects if stale(*k)]:
            del self._local_subjects[key]

    def _drop_peer_ips(self, stale: Callable[..., bool]) -> None:
        for key in [k for k, sels in self._peer_sels.items() if any(stale(*s) for s in sels)]:
            del self._peer_sels[key]
            self._peer_ips.pop(key, None)

    def refresh_pods(self, keys: set[ObjectKey]) -> None:
        """Pods changed (added, removed, relabelled): their entries are replaced, their
        namespaces' selections dropped, and of the cross-namespace results (cluster
        subjects, peer addresses) those that can pick the old or the new version of a
        changed pod: a result no selector of which picks either is unchanged."""
        spaces = {k.namespace for k in keys}
        touched: list[tuple[str, dict[str, str]]] = []  # (namespace, labels) of every old and new version
        for k in keys:
            old = next((p for p in self.by_ns.get(k.namespace, ()) if p.name == k.name), None)
            if old is not None:
                i = self.info.pop(id(old))
                touched.append((i.ns, i.labels))
                self.ips.pop(id(old))
                self.named.pop(id(old))
                self.pods = [p for p in self.pods if p is not old]
                self.by_ns[k.namespace] = [p for p in self.by_ns[k.namespace] if p is not old]
                for kv in i.labels.items():
                    lk = (i.ns,) + kv
                    self.by_label[lk] = [p for p in self.by_label[lk] if p is not old]
            new = self.state.get("Pod", k.namespace, k.name)
            if isinstance(new, Pod) and is_policy_pod(new):
                i = pod_info(new)
                touched.append((i.ns, i.labels))
                self.info[id(new)], self.ips[id(new)], self.named[id(new)] = i, i.ips, i.named
                # the order a fresh index has: by namespace, then name
                bisect.insort(self.pods, new, key=lambda p: (self.info[id(p)].ns, self.info[id(p)].name))
                self.by_ns[i.ns].append(new)
                for kv in i.labels.items():
                    self.by_label[(i.ns,) + kv].append(new)
        name_of = lambda p: self.info[id(p)].name  # noqa: E731
        for ns in spaces:  # the order a fresh index has: by namespace, then name
            self.by_ns[ns].sort(key=name_of)
            for lk, lst in self.by_label.items():
                if lk[0] == ns:
                    lst.sort(key=name_of)
            if not self.by_ns[ns]:
                del self.by_ns[ns]
            self._cache.pop(ns, None)
        self.refresh_namespaces(spaces)  # a namespace may have come or gone with its pods

        def picks(ns: str | None, ns_sel: LabelSelector | None, pod_sel: LabelSelector) -> bool:
            return any((ns is None or ns == t_ns)
                       and (ns_sel is None or ns_sel.matches(self.ns_labels.get(t_ns, {})))
                       and pod_sel.matches(t_labels) for t_ns, t_labels in touched)
        self._drop_subjects(lambda ns_sel, pod_sel: picks(None, ns_sel, pod_sel))
        self._drop_peer_ips(picks)
        self.named_memo.clear()

    def in_namespace(self, ns: str, sel: LabelSelector) -> list[Pod]:
        memo = self._cache.get(ns)
        if memo is None:
            memo = self._cache[ns] = {}
        hit = memo.get(sel)
        if hit is None:
            cands = self.by_ns.get(ns, [])
            for r in sel.requirements:
                if r.operator == "In" and len(r.values) == 1:
                    cands = self.by_label.get((ns, r.key, r.values[0]), [])
                    break
            hit = memo[sel] = [p for p in cands if sel.matches(self.info[id(p)].labels)]
        return hit

    def subject_pods(self, ns_sel: LabelSelector, pod_sel: LabelSelector) -> list[Pod]:
        """The pods a ClusterNetworkPolicy subject selects (namespace AND pod selector), in
        (namespace, name) order; memoised until a pod or namespace changes."""
        hit = self._subjects.get((ns_sel, pod_sel))
        if hit is None:
            hit = self._subjects[(ns_sel, pod_sel)] = [
                p for ns, labels in sorted(self.ns_labels.items()) if ns_sel.matches(labels)
                for p in self.in_namespace(ns, pod_sel)]
        return hit

    def local_subject_pods(self, ns_sel: LabelSelector, pod_sel: LabelSelector,
                           local_ids: set[int]) -> tuple[list[Pod], set[int]]:
        """subject_pods among `local_ids` (pods by id), and their ids; memoised as long as
        the local pods stay the same."""
        if local_ids is not self._local_ids:  # once per compile: a new set, maybe the same pods
            if local_ids != self._local_ids:
                self._local_pods_changed(local_ids)
            self._local_ids = local_ids
        hit = self._local_subjects.get((ns_sel, pod_sel))
        if hit is None:
            pods = [p for p in self.subject_pods(ns_sel, pod_sel) if id(p) in local_ids]
            hit = self._local_subjects[(ns_sel, pod_sel)] = (pods, {id(p) for p in pods})
        return hit

    def _local_pods_changed(self, local_ids: set[int]) -> None:
        """Drop the local selections a pod that left or joined the local pods can change
        (a relabelled pod is a new object: it leaves and joins); keep the rest."""
        gone, came = self._local_ids - local_ids, local_ids - self._local_ids
        if len(gone) + len(came) > 50:
            self._local_subjects.clear()
            return
        joined = [self.info[i] for i in came if i in self.info]
        for key in [k for k, (_, ids) in self._local_subjects.items()
                    if not ids.isdisjoint(gone) or any(
                        k[0].matches(self.ns_labels.get(i.ns, {})) and k[1].matches(i.labels) for i in joined)]:
            del self._local_subjects[key]

    def peer_key(self, np: NetworkPolicy, peer: PolicyPeer) -> str:
        """Names what a selector peer picks: its selectors, and the policy's namespace when
        it has no namespaceSelector."""
        ns = np.namespace if peer.namespace_selector is None else "*"
        return repr((ns, sel_text(peer.namespace_selector), sel_text(peer.pod_selector)))

    def peer_ips(self, np: NetworkPolicy, peers: list[PolicyPeer]) -> tuple[str, dict[int, frozenset[int]]]:
        """The addresses the selector peers of one rule pick, per family, memoised per sync
        on their keys (at scale most rules repeat a few selectors)."""
        key = repr(tuple(sorted({self.peer_key(np, pe) for pe in peers})))
        hit = self._peer_ips.get(key)
        if hit is None:
            pips: dict[int, set[int]] = {4: set(), 6: set()}
            for pe in peers:
                for p in self.peer_pods(np, pe):
                    for fam, n in self.ips[id(p)]:
                        pips[fam].add(n)
            hit = self._peer_ips[key] = {f: frozenset(pips[f]) for f in FAMILIES}
            self._peer_sels[key] = [(np.namespace if pe.namespace_selector is None else None, pe.namespace_selector,
                                     pe.pod_selector or LabelSelector.everything()) for pe in peers]
        return key, hit

    def peer_pods(self, np: NetworkPolicy, peer: PolicyPeer) -> list[Pod]:
        if peer.ip_block is not None or (peer.pod_selector is None and peer.namespace_selector is None):
            return []
        psel = peer.pod_selector or LabelSelector.everything()
        if peer.namespace_selector is None:
            return self.in_namespace(np.namespace, psel)
        out: list[Pod] = []
        for ns, labels in sorted(self.ns_labels.items()):
            if peer.namespace_selector.matches(labels):
                out.extend(self.in_namespace(ns, psel))
        return out


def pod_index(state: ClusterState, prev: PodIndex | None = None,
              changed: set[ObjectKey] | None = None) -> PodIndex:
    """The index for a sync: the last one (`prev`, over the same state object) brought up to
    date with `changed`, keeping its memoised selections where still valid; else a new one."""
    if prev is None or changed is None or prev.state is not state:
        return PodIndex(state)
    pods = {k for k in changed if k.kind == "Pod"}
    if len(pods) > 50:
        return PodIndex(state)  # a big batch: rebuilding is as cheap
    if pods:
        prev.refresh_pods(pods)
    spaces = {k.name for k in changed if k.kind == "Namespace"}
    if spaces:
        prev.refresh_namespaces(spaces)
    return prev


_SEL_TEXT: dict[LabelSelector, str] = {}


def sel_text(sel: LabelSelector | None) -> str:
    """Unambiguous text of a selector (repr of plain tuples of strings), memoised."""
    if sel is None:
        return "-"
    hit = _SEL_TEXT.get(sel)
    if hit is None:
        if len(_SEL_TEXT) > 100_000:
            _SEL_TEXT.clear()
        hit = _SEL_TEXT[sel] = "!" if sel.selects_nothing else repr(
            tuple((r.key, r.operator, r.values) for r in sel.requirements))
    return hit


_PARSED: dict[str, tuple[int, int, str]] = {}


def _parse(ip: str) -> tuple[int, int, str]:
    """(family, integer, canonical text), memoised: parsing dominates syncs at scale."""
    hit = _PARSED.get(ip)
    if hit is None:
        if len(_PARSED) > 1_000_000:
            _PARSED.clear()
        a = ipaddress.ip_address(ip)
        hit = _PARSED[ip] = (a.version, int(a), str(a))
    return hit


def ip_int(ip: str) -> tuple[int, int]:
    f, v, _ = _parse(ip)
    return f, v
