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
from podnet.calc.policy.tiers import node_addresses, rules_in, tier_key

if TYPE_CHECKING:  # compile.py imports this module; its names are read lazily here
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


def _selected(idx: PodIndex, cnp: ClusterNetworkPolicy) -> list[Pod]:
    ns_sel, pod_sel = cnp.subject
    out: list[Pod] = []
    for ns, labels in sorted(idx.ns_labels.items()):
        if ns_sel.matches(labels):
            out.extend(idx.in_namespace(ns, pod_sel))
    return out


def _with_nodes(idx: PodIndex, r: "CompiledRule", addrs: set[str]) -> "CompiledRule":
    from podnet.calc.policy.compile import merge
    blocks = {f: list(r.peer_blocks.get(f, ())) for f in FAMILIES}
    for a in addrs:
        ip = ipaddress.ip_address(a)
        blocks[ip.version].append((int(ip), int(ip)))
    return replace(r, peer_blocks={f: merge(blocks[f]) for f in FAMILIES})


def compile_cluster(idx: PodIndex, local_ids: set[int],
                    errors: list[str]) -> tuple[dict[str, ClusterChain], dict[int, TierLists]]:
    """Chains of every cluster policy selecting a local pod, and per local pod (by id) its
    chain ids per (tier, direction), in evaluation order."""
    from podnet.calc.policy.compile import _compile_rule
    chains: dict[str, ClusterChain] = {}
    members: dict[int, TierLists] = {}
    for cnp in sorted(idx.state.cluster_policies, key=tier_key):
        try:
            if cnp.tier not in (ADMIN, BASELINE):
                continue
            selected = [p for p in _selected(idx, cnp) if id(p) in local_ids]
            if not selected:
                continue
            ns_sel, pod_sel = cnp.subject
            skey = repr(("cnp", sel_text(ns_sel), sel_text(pod_sel)))
            mine: dict[str, ClusterChain] = {}
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
        for cid, ch in mine.items():
            key = (ch.tier, ch.direction)
            for p in selected:
                m = members.get(id(p))
                if m is None:
                    m = members[id(p)] = {}
                lst = m.get(key)
                if lst is None:
                    m[key] = [cid]
                else:
                    lst.append(cid)
    return chains, members
