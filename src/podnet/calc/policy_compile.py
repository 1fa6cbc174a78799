"""NetworkPolicy compiled to the per-pod form the nftables renderer draws. Pure; imports api only.

One `PolicyChain` per (policy, direction) holds that policy's rules; each rule is plain
data: the peer addresses as merged intervals per family (pod IPs of the selector peers
plus ipBlock ranges minus their excepts), numeric port ranges per protocol, and the
named ports already resolved to (pod IP, protocol, port) triples (ingress: on the
selected pods; egress: on the peer pods). One `PodPolicy` per local pod lists the chains
that isolate it. `evaluate()` runs this form for a packet; tests hold it equal to the
predicate in `policy.py`.
"""
from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from podnet.api.objects import NetworkPolicy, ObjectKey, Pod, PolicyPeer, PolicyRule
from podnet.api.selector import LabelSelector
from podnet.calc.model import ClusterState
from podnet.calc.policy import (EGRESS, INGRESS, RuleRef, has_type, is_policy_pod, namespace_labels,
                                pod_addresses, rules_of, valid_block)

Interval = tuple[int, int]
PROTOCOLS = ("TCP", "UDP", "SCTP")
FAMILIES = (4, 6)


@dataclass(frozen=True)
class PortRange:
    protocol: str
    lo: int
    hi: int


@dataclass(frozen=True)
class CompiledRule:
    ref: RuleRef
    any_peer: bool  # no `from`/`to`: every address
    peer_ips: dict[int, frozenset[int]]  # family -> addresses of the selector peers' pods
    peer_blocks: dict[int, tuple[Interval, ...]]  # family -> ipBlocks minus excepts, merged
    any_port: bool  # no `ports`: every protocol and port
    ports: tuple[PortRange, ...]  # numeric ports (a protocol alone is 0-65535)
    named: dict[int, tuple[tuple[int, str, int], ...]]  # family -> (ip, proto, port), resolved
    # which selectors fill peer_ips (`PodIndex.peer_key`s joined): rules with equal keys have
    # equal peer_ips, so the renderer names one set after it and edits it in place
    peer_key: str = ""

    def matches(self, direction: str, peer_ip: int, peer_fam: int, own_ip: int,
                port: int, protocol: str) -> bool:
        peer_ok = (self.any_peer or peer_ip in self.peer_ips.get(peer_fam, ())
                   or _in(self.peer_blocks.get(peer_fam, ()), peer_ip))
        if self.any_port:
            return peer_ok
        if peer_ok and any(p.protocol == protocol and p.lo <= port <= p.hi for p in self.ports):
            return True
        # named: ingress keys on the selected pod (own) and still needs the peer check;
        # egress keys on the peer pod, whose membership already encodes the peer check.
        key_ip = own_ip if direction == INGRESS else peer_ip
        hit = (key_ip, protocol, port) in set(self.named.get(peer_fam, ()))
        return hit and (peer_ok or direction == EGRESS)


@dataclass(frozen=True)
class PolicyChain:
    namespace: str
    policy: str
    direction: str
    rules: tuple[CompiledRule, ...]

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.policy}/{self.direction}"


@dataclass(frozen=True)
class PodPolicy:
    key: ObjectKey
    ips: tuple[str, ...]
    iface: str  # host-side veth name when known, else ""
    ingress: tuple[str, ...] | None  # chain ids; None: not isolated
    egress: tuple[str, ...] | None


@dataclass
class CompiledPolicies:
    chains: dict[str, PolicyChain] = field(default_factory=dict)
    pods: dict[ObjectKey, PodPolicy] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # objects skipped, for the agent's log
    index: "PodIndex | None" = field(default=None, compare=False, repr=False)  # for pod_index()


IFACE_ANNOTATION = "podnet.io/host-veth"


LAB_NETNS_ANNOTATION = "podnet.io/netns"


def host_iface(pod: Pod) -> str:
    """The pod's host-side veth: as recorded (annotation), else, for a pod the lab kubelet
    wired (it passes the pod uid as the CNI container id, interface eth0), the name
    podnet-cni derives: `pn` + sha256("<container id>/<ifname>")[:11] (cni/veth.host_ifname;
    calc may not import cni, a unit test keeps the two equal). "" when unknown: then the
    pod is not in the anti-spoofing sets (never a false drop)."""
    rec = pod.annotations.get(IFACE_ANNOTATION)
    if rec:
        return rec
    if pod.uid and pod.annotations.get(LAB_NETNS_ANNOTATION):
        return "pn" + hashlib.sha256(f"{pod.uid}/eth0".encode()).hexdigest()[:11]
    return ""


# ---- intervals ------------------------------------------------------------------------
def merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _in(intervals: tuple[Interval, ...], x: int) -> bool:
    return any(lo <= x <= hi for lo, hi in intervals)


def block_intervals(cidr: str, excepts: Iterable[str]) -> tuple[int, tuple[Interval, ...]]:
    net = ipaddress.ip_network(cidr, strict=False)
    cur = [(int(net.network_address), int(net.broadcast_address))]
    for e in excepts:
        en = ipaddress.ip_network(e, strict=False)
        if en.version != net.version:
            continue
        elo, ehi = int(en.network_address), int(en.broadcast_address)
        nxt = []
        for lo, hi in cur:
            if ehi < lo or elo > hi:
                nxt.append((lo, hi))
                continue
            if lo < elo:
                nxt.append((lo, elo - 1))
            if ehi < hi:
                nxt.append((ehi + 1, hi))
        cur = nxt
    return net.version, merge(cur)


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
        self._cache: dict[tuple[str, LabelSelector], list[Pod]] = {}
        self._peer_ips: dict[str, dict[int, frozenset[int]]] = {}
        self.named_memo: dict[tuple[str, tuple], dict[int, tuple[tuple[int, str, int], ...]]] = {}

    def refresh_namespaces(self, names: set[str]) -> None:
        """Namespace labels changed: selections of pods within a namespace stay, every
        result that read namespace labels goes."""
        for ns in names:
            if ns in self.by_ns or self.state.get("Namespace", "", ns) is not None:
                self.ns_labels[ns] = namespace_labels(self.state, ns)
            else:
                self.ns_labels.pop(ns, None)
        self._peer_ips.clear()
        # ingress named ports resolve on the selected pods, whatever the namespace labels
        self.named_memo = {k: v for k, v in self.named_memo.items() if k[0].startswith("in ")}

    def refresh_pods(self, keys: set[ObjectKey]) -> None:
        """Pods changed (added, removed, relabelled): their entries are replaced, their
        namespaces' selections and every cross-namespace result dropped."""
        spaces = {k.namespace for k in keys}
        for k in keys:
            old = next((p for p in self.by_ns.get(k.namespace, ()) if p.name == k.name), None)
            if old is not None:
                i = self.info.pop(id(old))
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
                self.info[id(new)], self.ips[id(new)], self.named[id(new)] = i, i.ips, i.named
                self.pods.append(new)
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
        self.pods.sort(key=lambda p: (self.info[id(p)].ns, self.info[id(p)].name))
        self._cache = {ck: v for ck, v in self._cache.items() if ck[0] not in spaces}
        self.refresh_namespaces(spaces)
        self.named_memo.clear()

    def in_namespace(self, ns: str, sel: LabelSelector) -> list[Pod]:
        ck = (ns, sel)
        if ck not in self._cache:
            cands = self.by_ns.get(ns, [])
            for r in sel.requirements:
                if r.operator == "In" and len(r.values) == 1:
                    cands = self.by_label.get((ns, r.key, r.values[0]), [])
                    break
            self._cache[ck] = [p for p in cands if sel.matches(self.info[id(p)].labels)]
        return self._cache[ck]

    def peer_key(self, np: NetworkPolicy, peer: PolicyPeer) -> str:
        """Names what a selector peer picks: its selectors, and the policy's namespace when
        it has no namespaceSelector."""
        ns = np.namespace if peer.namespace_selector is None else "*"
        return repr((ns, _sel_text(peer.namespace_selector), _sel_text(peer.pod_selector)))

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


def _sel_text(sel: LabelSelector | None) -> str:
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


def _ip_int(ip: str) -> tuple[int, int]:
    f, v, _ = _parse(ip)
    return f, v


# ---- compile --------------------------------------------------------------------------
def _merge_ports(ports: list[PortRange]) -> tuple[PortRange, ...]:
    """Per protocol, overlapping or adjacent ranges merged (nft interval sets refuse overlaps)."""
    out: list[PortRange] = []
    for proto in sorted({p.protocol for p in ports}):
        out.extend(PortRange(proto, lo, hi) for lo, hi in merge((p.lo, p.hi) for p in ports if p.protocol == proto))
    return tuple(out)


def _named_owners(idx: PodIndex, direction: str, rule: PolicyRule, selected: list[Pod],
                  peer_pods: list[Pod]) -> list[tuple[Pod, list[tuple[int, int]]]]:
    """Pods a named port is resolved on, with the addresses that count: ingress, the
    selected pods; egress, the peer pods (for an ipBlock peer only its addresses inside)."""
    if direction == INGRESS:
        return [(p, idx.ips[id(p)]) for p in selected]
    if rule.peers is None:
        return [(p, idx.ips[id(p)]) for p in idx.pods]
    out = [(p, idx.ips[id(p)]) for p in peer_pods]
    for pe in rule.peers:
        if pe.ip_block is None or not valid_block(pe.ip_block.cidr, pe.ip_block.except_):
            continue
        fam, ivs = block_intervals(pe.ip_block.cidr, pe.ip_block.except_)
        for p in idx.pods:
            ips = [(f, v) for f, v in idx.ips[id(p)] if f == fam and _in(ivs, v)]
            if ips:
                out.append((p, ips))
    return out


def _compile_rule(idx: PodIndex, np: NetworkPolicy, direction: str, i: int, rule: PolicyRule,
                  selected: list[Pod], selected_key: str) -> CompiledRule:
    blocks: dict[int, list[Interval]] = {4: [], 6: []}
    sel_peers: list[PolicyPeer] = []
    for pe in rule.peers or ():
        if pe.ip_block is not None:
            if not valid_block(pe.ip_block.cidr, pe.ip_block.except_):
                continue
            fam, ivs = block_intervals(pe.ip_block.cidr, pe.ip_block.except_)
            blocks[fam].extend(ivs)
        elif pe.pod_selector is not None or pe.namespace_selector is not None:
            sel_peers.append(pe)
    peer_key, pips = idx.peer_ips(np, sel_peers) if sel_peers else ("", {f: frozenset() for f in FAMILIES})
    peer_pods: list[Pod] = []
    ports: list[PortRange] = []
    named: dict[int, set[tuple[int, str, int]]] = {4: set(), 6: set()}
    names = tuple((pp.port, pp.protocol) for pp in rule.ports or () if isinstance(pp.port, str))
    # Named ports resolve on the selected pods (ingress: a function of the policy's
    # namespace and selector) or on selector-only peers (egress: of the peers' key), so
    # rules sharing those share the result.
    memo_key: tuple[str, tuple] | None = None
    if names and direction == INGRESS:
        memo_key = ("in " + selected_key, names)
    elif names and rule.peers and len(sel_peers) == len(rule.peers):
        memo_key = (peer_key, names)
    memo = idx.named_memo.get(memo_key) if memo_key is not None else None
    for pp in rule.ports or ():
        if pp.protocol not in PROTOCOLS:
            continue  # matches no packet in the predicate either
        if pp.port is None or isinstance(pp.port, int):
            lo = 0 if pp.port is None else pp.port
            hi = 65535 if pp.port is None else (pp.end_port if pp.end_port is not None else pp.port)
            lo, hi = max(lo, 0), min(hi, 65535)  # the part a real port can match
            if lo <= hi:
                ports.append(PortRange(pp.protocol, lo, hi))
            continue
        if memo is not None:
            continue
        if direction != INGRESS and not peer_pods:
            for pe in sel_peers:
                peer_pods.extend(idx.peer_pods(np, pe))
        for p, ips in _named_owners(idx, direction, rule, selected, peer_pods):
            n = idx.named[id(p)].get((pp.port, pp.protocol))
            if n is not None and 0 <= n <= 65535:
                for fam, v in ips:
                    named[fam].add((v, pp.protocol, n))
    if memo is None:
        memo = {f: tuple(sorted(named[f])) for f in FAMILIES}
        if memo_key is not None:
            idx.named_memo[memo_key] = memo
    return CompiledRule(RuleRef(np.namespace, np.name, direction, i), rule.peers is None,
                        pips, {f: merge(blocks[f]) for f in FAMILIES}, rule.ports is None,
                        _merge_ports(ports), memo, peer_key)


def _compile_policy(idx: PodIndex, pi: PolicyInfo, local_ids: set[int],
                    memberships: dict[int, dict[str, list[str]]],
                    out: CompiledPolicies, only: set[str] | None,
                    reuse: dict[str, PolicyChain] | None) -> None:
    selected = [p for p in idx.in_namespace(pi.ns, pi.selector) if id(p) in local_ids]
    if not selected:
        return
    chains: dict[str, PolicyChain] = {}
    selected_key = repr((pi.ns, _sel_text(pi.selector)))
    for direction in pi.types:
        cid = f"{pi.ns}/{pi.name}/{direction}"
        if only is not None and reuse is not None and cid not in only and cid in reuse:
            chains[cid] = reuse[cid]
            continue
        chains[cid] = PolicyChain(pi.ns, pi.name, direction, tuple(
            _compile_rule(idx, pi.np, direction, i, r, selected, selected_key)
            for i, r in enumerate(pi.rules[direction])))
    out.chains.update(chains)  # only once the whole policy compiled
    for cid, ch in chains.items():
        for p in selected:
            m = memberships.get(id(p))
            if m is not None:
                m[ch.direction].append(cid)


def compile_policies(state: ClusterState, local: Callable[[Pod], bool] | None = None,
                     only: set[str] | None = None,
                     reuse: dict[str, PolicyChain] | None = None,
                     prev: CompiledPolicies | None = None,
                     dirty_ns: set[str] | None = None,
                     index: PodIndex | None = None) -> CompiledPolicies:
    """Compile for the pods `local` accepts (all when None).

    Partial sync (see policy_sync): chains not in `only` are taken from `reuse` when there.
    With `prev` (the last result) and `dirty_ns` (namespaces where a pod or a policy
    changed), the pods of every other namespace keep their `prev` PodPolicy: which policies
    select a pod depends only on its own namespace's pods and policies. `index`: see
    pod_index()."""
    idx = index if index is not None else PodIndex(state)
    out = CompiledPolicies(index=idx)
    # namespaces whose pods keep their `prev` PodPolicy: all but the dirty ones
    dirty: set[str] | None = dirty_ns if prev is not None and only is not None and reuse is not None else None
    only_, reuse_ = only or set(), reuse or {}
    locals_ = [p for p in idx.pods if local is None or local(p)]
    local_ids = {id(p) for p in locals_}
    memberships: dict[int, dict[str, list[str]]] = {
        id(p): {INGRESS: [], EGRESS: []} for p in locals_ if dirty is None or idx.info[id(p)].ns in dirty}
    infos = sorted((policy_info(np) for np in state.policies), key=lambda i: (i.ns, i.name))
    for pi in infos:  # stable jump order
        if dirty is not None and pi.ns not in dirty:
            cids = [f"{pi.ns}/{pi.name}/{d}" for d in pi.types]
            if cids and all(c in reuse_ and c not in only_ for c in cids):
                out.chains.update((c, reuse_[c]) for c in cids)
                continue
        try:
            _compile_policy(idx, pi, local_ids, memberships, out, only, reuse)
        except (ValueError, TypeError, AttributeError) as e:
            # Validation keeps such objects out of the store; if one gets in anyway the
            # agent skips it (reported) rather than stop enforcing every other policy.
            out.errors.append(f"NetworkPolicy {pi.ns}/{pi.name}: {e}")
    if dirty is not None and prev is not None:
        out.pods = {k: pp for k, pp in prev.pods.items() if k.namespace not in dirty}
    for p in locals_:
        m = memberships.get(id(p))
        if m is None:
            continue
        i = idx.info[id(p)]
        key = ObjectKey("Pod", i.ns, i.name)
        out.pods[key] = PodPolicy(key, i.canon, i.iface, tuple(m[INGRESS]) if m[INGRESS] else None,
                                  tuple(m[EGRESS]) if m[EGRESS] else None)
    return out


def evaluate(c: CompiledPolicies, src_ip: str, dst_ip: str, port: int, protocol: str) -> bool:
    """Run the compiled form for a new connection, as the nft chains will (a tracer)."""
    sfam, s = _ip_int(src_ip)
    _, d = _ip_int(dst_ip)
    by_ip = {ip: pp for pp in c.pods.values() for ip in pp.ips}
    sp, dp = by_ip.get(str(ipaddress.ip_address(src_ip))), by_ip.get(str(ipaddress.ip_address(dst_ip)))
    if sp is not None and dp is not None and sp.key == dp.key:
        return True
    for pod, chains, direction, peer, own in ((sp, sp and sp.egress, EGRESS, d, s),
                                              (dp, dp and dp.ingress, INGRESS, s, d)):
        if pod is None or chains is None:
            continue
        if not any(r.matches(direction, peer, sfam, own, port, protocol)
                   for cid in chains for r in c.chains[cid].rules):
            return False
    return True
