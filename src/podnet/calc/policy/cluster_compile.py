"""ClusterNetworkPolicy compiled to the form the nftables renderer draws. Pure; imports api only.

One `ClusterChain` per (policy, direction) holds that policy's rules in order, each an
action and a `CompiledRule` (compile.py: peer addresses as intervals per family, ports,
named ports resolved to (pod IP, protocol, port)); `nodes` peers become the addresses of
the nodes they select. Per local pod, the chain ids of each tier and direction in
evaluation order (tiers.py: priority, then name) go into its `PodPolicy`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from podnet.api.cluster_policy import ADMIN, BASELINE, ClusterNetworkPolicy
from podnet.api.objects import Pod
from podnet.calc.policy.index import FAMILIES, PodIndex, sel_text
from podnet.calc.policy.match import EGRESS, INGRESS
from podnet.calc.policy.tiers import node_addresses, rules_in, subject_of, tier_key

if TYPE_CHECKING:  # compile.py imports this module; its names are read lazily here
    from podnet.calc.policy.cluster_sync import ClusterPlan
    from podnet.calc.policy.compile import CompiledRule

TierLists = dict[tuple[str, str], list[str]]  # (tier, direction) -> chain ids


@dataclass(frozen=True)
class ClusterChain:
    policy: str
    tier: str
    priority: int
    direction: str
    rules: tuple[tuple[str, "CompiledRule"], ...]  # (action, rule)
    rule_names: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"cnp/{self.policy}/{self.direction}"


def _with_nodes(idx: PodIndex, r: "CompiledRule", addrs: set[str]) -> "CompiledRule":
    from podnet.calc.policy.compile import merge
    blocks = {f: list(r.peer_blocks.get(f, ())) for f in FAMILIES}
    for a in addrs:
        ip = ipaddress.ip_address(a)
        blocks[ip.version].append((int(ip), int(ip)))
    return replace(r, peer_blocks={f: merge(blocks[f]) for f in FAMILIES})


def compile_cluster(idx: PodIndex, local_ids: set[int], errors: list[str],
                    prev_chains: dict[str, ClusterChain] | None = None,
                    prev_members: dict[str, list[Pod]] | None = None,
                    plan: "ClusterPlan | None" = None, relist: set[int] | None = None,
                    ) -> tuple[dict[str, ClusterChain], dict[str, list[Pod]], dict[int, TierLists]]:
    """Chains of every cluster policy selecting a local pod; per such policy its selected
    local pods; per pod (by id) its chain ids per (tier, direction), in evaluation order.

    Without `plan` everything is compiled and every local pod gets its tier lists. With
    `plan` (cluster_sync.plan_cluster) and the last sync's chains and members, only the
    policies in `plan.recompile` (or without chains last time) are compiled, the rest
    reused as they are; and only the pods in `relist` (ids, which this adds the old and new
    subjects' pods of `plan.changed` to) get tier lists: every other pod keeps its last."""
    from podnet.calc.policy.compile import _compile_rule
    partial = plan is not None and prev_chains is not None and prev_members is not None and relist is not None
    chains: dict[str, ClusterChain] = {}
    members: dict[str, list[Pod]] = {}
    order: list[tuple[dict[str, ClusterChain], list[Pod], set[int]]] = []
    for cnp in sorted(idx.state.cluster_policies, key=tier_key):
        try:
            if cnp.tier not in (ADMIN, BASELINE):
                continue
            ns_sel, pod_sel = subject_of(cnp)
            selected, selected_ids = idx.local_subject_pods(ns_sel, pod_sel, local_ids)
            if not selected:
                continue
            mine: dict[str, ClusterChain] = {}
            if partial and cnp.name not in plan.recompile and cnp.name in prev_members:  # type: ignore[union-attr,operator]
                for direction in (INGRESS, EGRESS):
                    cid = f"cnp/{cnp.name}/{direction}"
                    if cid in prev_chains:  # type: ignore[operator]
                        mine[cid] = prev_chains[cid]  # type: ignore[index]
            else:
                skey = repr(("cnp", sel_text(ns_sel), sel_text(pod_sel)))
                for direction in (INGRESS, EGRESS):
                    rules = rules_in(cnp, direction)
                    if not rules:
                        continue
                    compiled = []
                    for i, cr in enumerate(rules):
                        r = _compile_rule(idx, cnp, direction, i, cr.rule, selected, skey)  # type: ignore[arg-type]
                        if cr.nodes:
                            r = _with_nodes(idx, r, node_addresses(idx.state, cr.nodes))
                        compiled.append((cr.action, r))
                    ch = ClusterChain(cnp.name, cnp.tier, cnp.priority, direction, tuple(compiled),
                                      tuple(cr.name for cr in rules))
                    mine[ch.id] = ch
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            errors.append(f"ClusterNetworkPolicy {cnp.name}: {e}")
            continue
        chains.update(mine)
        if mine:
            members[cnp.name] = selected
            order.append((mine, selected, selected_ids))
    if partial:
        for name in plan.changed:  # type: ignore[union-attr]
            relist.update(id(p) for p in prev_members.get(name, ()))  # type: ignore[union-attr]
            relist.update(id(p) for p in members.get(name, ()))  # type: ignore[union-attr]
    lists: dict[int, TierLists] = {i: {} for i in (relist if partial else local_ids)}  # type: ignore[union-attr]
    for mine, selected, selected_ids in order:
        # the smaller side: the selected pods, or the pods to relist (often a few)
        pids = [i for i in lists if i in selected_ids] if len(lists) < len(selected) else [
            i for i in map(id, selected) if i in lists]
        for cid, ch in mine.items():
            key = (ch.tier, ch.direction)
            for pid in pids:
                m = lists[pid]
                lst = m.get(key)
                if lst is None:
                    m[key] = [cid]
                else:
                    lst.append(cid)
    return chains, members, lists


@dataclass(frozen=True)
class TierFilter:
    """What any rule of a tier list (for one direction) can match, each field on its own:
    the peer addresses (intervals per family) and the TCP/UDP/SCTP ports (`None`: some rule
    matches every port or protocol). A packet outside either cannot match any rule of the
    list, so the tier decides nothing for it; the renderer lets such packets skip the
    tier's chains at the cost of two set lookups (the established fast path comes first)."""
    peers: dict[int, tuple[tuple[int, int], ...]]
    ports: tuple[tuple[str, int, int], ...] | None


_FULL = {4: (0, (1 << 32) - 1), 6: (0, (1 << 128) - 1)}


def tier_filter(chains: tuple[ClusterChain, ...]) -> TierFilter:
    """An over-approximation of what `chains`' rules match (CompiledRule.matches): a rule
    needs its peer (selector pods, blocks; or, for egress named ports, the named pod) and
    one of its ports (numeric, or a named port's resolved number). Each chain's part is
    merged once per chain object (`_chain_filter`), so a list in which one policy changed
    merges a few intervals per policy, not every peer address again."""
    from podnet.calc.policy.compile import merge
    parts = [_chain_filter(ch) for ch in chains]
    any_port = any(p[2] for p in parts)
    ports = [pr for p in parts for pr in p[1]]
    merged: list[tuple[str, int, int]] = []
    for proto in sorted({p for p, _, _ in ports}):
        merged.extend((proto, lo, hi) for lo, hi in merge((lo, hi) for p, lo, hi in ports if p == proto))
    return TierFilter({f: merge(iv for p in parts for iv in p[0][f]) for f in FAMILIES},
                      None if any_port else tuple(merged))


_CHAIN_FILTERS: dict[int, tuple[ClusterChain, tuple[dict[int, tuple[tuple[int, int], ...]],
                                                    tuple[tuple[str, int, int], ...], bool]]] = {}


def _chain_filter(ch: ClusterChain) -> tuple[dict[int, tuple[tuple[int, int], ...]], tuple[tuple[str, int, int], ...], bool]:
    """One chain's part of tier_filter: its peers merged per family, its ports, whether some
    rule matches every port; memoised per chain object."""
    hit = _CHAIN_FILTERS.get(id(ch))
    if hit is not None and hit[0] is ch:
        return hit[1]
    if len(_CHAIN_FILTERS) > 100_000:
        _CHAIN_FILTERS.clear()
    from podnet.calc.policy.compile import merge
    peers: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    ports: list[tuple[str, int, int]] = []
    any_port = False
    for _, r in ch.rules:
        named = {f: r.named.get(f, ()) for f in FAMILIES}
        if not (r.any_peer or any(r.peer_ips.get(f) or r.peer_blocks.get(f) or named[f] for f in FAMILIES)):
            continue  # matches nothing (its selectors pick no pod)
        for f in FAMILIES:
            if r.any_peer:
                peers[f].append(_FULL[f])
            peers[f].extend((v, v) for v in r.peer_ips.get(f, ()))
            peers[f].extend(r.peer_blocks.get(f, ()))
            if ch.direction == EGRESS:  # keyed on the peer pod, which needs no other peer match
                peers[f].extend((ip, ip) for ip, _, _ in named[f])
            ports.extend((proto, port, port) for _, proto, port in named[f])
        if r.any_port:
            any_port = True
        else:
            ports.extend((p.protocol, p.lo, p.hi) for p in r.ports)
    out = ({f: tuple(merge(peers[f])) for f in FAMILIES}, tuple(ports), any_port)
    _CHAIN_FILTERS[id(ch)] = (ch, out)
    return out
