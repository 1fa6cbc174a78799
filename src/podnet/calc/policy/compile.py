"""NetworkPolicy compiled to the per-pod form the nftables renderer draws. Pure; imports api only.

One `PolicyChain` per (policy, direction) holds that policy's rules; each rule is plain
data: the peer addresses as merged intervals per family (pod IPs of the selector peers
plus ipBlock ranges minus their excepts), numeric port ranges per protocol, and the
named ports already resolved to (pod IP, protocol, port) triples (ingress: on the
selected pods; egress: on the peer pods). One `PodPolicy` per local pod lists the chains
that isolate it. `evaluate()` runs this form for a packet; tests hold it equal to the
predicate in `predicate.py`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from podnet.api.objects import NetworkPolicy, ObjectKey, Pod, PolicyPeer, PolicyRule
from podnet.api.cluster_policy import ACCEPT, ADMIN, BASELINE, DENY
from podnet.calc.model import ClusterState
from podnet.calc.policy.cluster_compile import ClusterChain, compile_cluster
from podnet.calc.policy.cluster_sync import ClusterPlan
from podnet.calc.policy.predicate import EGRESS, INGRESS, RuleRef, valid_block
# the index, and names that lived here before it moved out (re-exported)
from podnet.calc.policy.index import (FAMILIES, IFACE_ANNOTATION, PodIndex,  # noqa: F401
                                      PodInfo, PolicyInfo, ip_int, sel_text, host_iface, pod_index,
                                      pod_info, policy_info)

Interval = tuple[int, int]
PROTOCOLS = ("TCP", "UDP", "SCTP")


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
    # what fills `named` (the selected pods' or the peers' key, and the port names): rules
    # with equal keys have equal `named`, so the renderer names one set after it
    named_key: str = ""

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
    # ClusterNetworkPolicy chain ids (cluster_compile.py), in evaluation order
    admin_ingress: tuple[str, ...] = ()
    admin_egress: tuple[str, ...] = ()
    baseline_ingress: tuple[str, ...] = ()
    baseline_egress: tuple[str, ...] = ()

    def tier_chains(self, tier: str, direction: str) -> tuple[str, ...]:
        if tier == ADMIN:
            return self.admin_ingress if direction == INGRESS else self.admin_egress
        return self.baseline_ingress if direction == INGRESS else self.baseline_egress


@dataclass
class CompiledPolicies:
    chains: dict[str, PolicyChain] = field(default_factory=dict)
    pods: dict[ObjectKey, PodPolicy] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # objects skipped, for the agent's log
    cluster: dict[str, ClusterChain] = field(default_factory=dict)  # ClusterNetworkPolicy chains
    index: "PodIndex | None" = field(default=None, compare=False, repr=False)  # for pod_index()
    # per cluster policy with chains, the local pods its subject selects (cluster_compile)
    cluster_members: dict[str, list[Pod]] = field(default_factory=dict, compare=False, repr=False)


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


_BLOCKS: dict[tuple[str, tuple[str, ...]], tuple[int, tuple[Interval, ...]]] = {}


def block_intervals(cidr: str, excepts: Iterable[str]) -> tuple[int, tuple[Interval, ...]]:
    """An ipBlock minus its excepts as merged intervals, memoised (parsing them was a tenth
    of recompiling the chains a namespace relabel touches)."""
    key = (cidr, tuple(excepts))
    hit = _BLOCKS.get(key)
    if hit is None:
        if len(_BLOCKS) > 100_000:
            _BLOCKS.clear()
        hit = _BLOCKS[key] = _block_intervals(cidr, key[1])
    return hit


def _block_intervals(cidr: str, excepts: Iterable[str]) -> tuple[int, tuple[Interval, ...]]:
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
    memo_key: tuple[str, tuple[Any, ...]] | None = None
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
                        _merge_ports(ports), memo, peer_key, repr(memo_key) if memo_key is not None else "")


def _compile_policy(idx: PodIndex, pi: PolicyInfo, local_ids: set[int],
                    memberships: dict[int, dict[str, list[str]]],
                    out: CompiledPolicies, only: set[str] | None,
                    reuse: dict[str, PolicyChain] | None) -> None:
    selected = [p for p in idx.in_namespace(pi.ns, pi.selector) if id(p) in local_ids]
    if not selected:
        return
    chains: dict[str, PolicyChain] = {}
    selected_key = repr((pi.ns, sel_text(pi.selector)))
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
                     index: PodIndex | None = None,
                     cluster_plan: ClusterPlan | None = None) -> CompiledPolicies:
    """Compile for the pods `local` accepts (all when None).

    Partial sync (see policy/sync.py): chains not in `only` are taken from `reuse` when there.
    With `prev` (the last result) and `dirty_ns` (namespaces where a pod or a policy
    changed), the pods of every other namespace keep their `prev` PodPolicy: which policies
    select a pod depends only on its own namespace's pods and policies. With `prev` and
    `cluster_plan` (policy/cluster_sync.py) the cluster chains and the pods' tier lists are
    `prev`'s but for what the plan names. `index`: see pod_index()."""
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
    relist: set[int] | None = None
    plan = cluster_plan if dirty is not None and prev is not None else None
    if plan is not None and prev is not None:
        relist = set()
        for k in plan.relist:
            p = state.get("Pod", k.namespace, k.name)
            if p is not None and id(p) in local_ids:
                relist.add(id(p))
        for ns in plan.namespaces:
            relist.update(id(p) for p in idx.by_ns.get(ns, ()) if id(p) in local_ids)
        for pid in memberships:  # (only dirty namespaces' pods) a pod new to this node
            i = idx.info[pid]
            if ObjectKey("Pod", i.ns, i.name) not in prev.pods:
                relist.add(pid)
    out.cluster, out.cluster_members, tiers = compile_cluster(
        idx, local_ids, out.errors, prev.cluster if prev else None, prev.cluster_members if prev else None,
        plan, relist)
    for p in locals_:
        m, t = memberships.get(id(p)), tiers.get(id(p))
        if m is None and t is None:
            continue  # its PodPolicy is prev's, kept above
        i = idx.info[id(p)]
        key = ObjectKey("Pod", i.ns, i.name)
        lists: tuple[tuple[str, ...], ...]
        if t is None:
            was = prev.pods[key]  # type: ignore[union-attr]
            lists = (was.admin_ingress, was.admin_egress, was.baseline_ingress, was.baseline_egress)
        else:
            lists = tuple(tuple(t.get((tier, d), ())) for tier in (ADMIN, BASELINE) for d in (INGRESS, EGRESS))
        if m is None:
            out.pods[key] = replace(out.pods[key], admin_ingress=lists[0], admin_egress=lists[1],
                                    baseline_ingress=lists[2], baseline_egress=lists[3])
            continue
        out.pods[key] = PodPolicy(key, i.canon, i.iface, tuple(m[INGRESS]) if m[INGRESS] else None,
                                  tuple(m[EGRESS]) if m[EGRESS] else None, *lists)
    return out


def evaluate(c: CompiledPolicies, src_ip: str, dst_ip: str, port: int, protocol: str) -> bool:
    """Run the compiled form for a new connection, as the nft chains will (a tracer)."""
    sfam, s = ip_int(src_ip)
    _, d = ip_int(dst_ip)
    by_ip = {ip: pp for pp in c.pods.values() for ip in pp.ips}
    sp, dp = by_ip.get(str(ipaddress.ip_address(src_ip))), by_ip.get(str(ipaddress.ip_address(dst_ip)))
    if sp is not None and dp is not None and sp.key == dp.key:
        return True
    for pod, direction, peer, own in ((sp, EGRESS, d, s), (dp, INGRESS, s, d)):
        if pod is not None and not _side(c, pod, direction, peer, sfam, own, port, protocol):
            return False
    return True


def _tier(c: CompiledPolicies, pod: PodPolicy, tier: str, direction: str, peer: int, fam: int,
          own: int, port: int, protocol: str) -> bool | None:
    """True (Accept), False (Deny), None (Pass, or no rule matched)."""
    for cid in pod.tier_chains(tier, direction):
        for action, r in c.cluster[cid].rules:
            if r.matches(direction, peer, fam, own, port, protocol):
                return True if action == ACCEPT else False if action == DENY else None
    return None


def _side(c: CompiledPolicies, pod: PodPolicy, direction: str, peer: int, fam: int, own: int,
          port: int, protocol: str) -> bool:
    admin = _tier(c, pod, ADMIN, direction, peer, fam, own, port, protocol)
    if admin is not None:
        return admin
    chains = pod.egress if direction == EGRESS else pod.ingress
    if chains is not None:
        return any(r.matches(direction, peer, fam, own, port, protocol)
                   for cid in chains for r in c.chains[cid].rules)
    base = _tier(c, pod, BASELINE, direction, peer, fam, own, port, protocol)
    return True if base is None else base
