"""Render ClusterNetworkPolicy chains (calc/policy/cluster_compile.py). Pure: no I/O.

One chain `cnp/<policy>/<in|eg>` per policy and direction, its rules in order, each with
a named counter `cnp/<policy>/<ingress|egress>/<i>` and its action's verdict:
- Accept: `accept` (ends this base chain: the other side still has its say);
- Deny: `drop`;
- Pass: in the Admin tier, `goto` the pod's chain after the Admin tier, looked up by the
  pod's own address in the `pass-in*`/`pass-eg*` maps (a shared chain cannot name the
  pod's chain itself); that chain always ends in a verdict, so the packet never comes
  back to the rest of the Admin tier. In the Baseline tier what follows is the default,
  so Pass is `goto default/<in|eg>`, a chain that accepts.
The pod chains reach them through a tier chain (`tier_chain`): one per distinct list of
policies of one tier and direction, shared by every pod that list selects (in a cluster
most pods share their tier lists: subjects are a few namespace and label selectors), so a
pod's chain holds one jump per tier instead of one per policy. A tier chain first lets a
new connection that no rule of its policies can match (by peer address or by port) skip
them all: two or three set lookups instead of a walk through every policy's chain. The pod
chains are policy.py's (`_render_pod`).
"""
from __future__ import annotations

import hashlib
from typing import Callable

from podnet.api.cluster_policy import ACCEPT, ADMIN, DENY, PASS
from podnet.calc.policy.cluster_compile import ClusterChain, tier_filter
from podnet.calc.policy.predicate import INGRESS
from podnet.dataplane.nft import flowlog
from podnet.dataplane.nft.families import ADDR_TYPE, IP_KEYWORD
from podnet.dataplane.nft.model import NftModel
from podnet.dataplane.nft.policy_rules import SHORT, _interval, _set, nft_name, rule_lines


def chain_name(cid: str) -> str:
    """`cnp/<policy>/<direction>` (a ClusterChain id) -> its nft chain name."""
    _, policy, direction = cid.rsplit("/", 2)
    return nft_name("cnp", policy, SHORT[direction])


def _verdict(ch: ClusterChain, action: str, counter: str, index: int) -> Callable[[int | None], str]:
    own = "daddr" if ch.direction == INGRESS else "saddr"
    pass_map = "pass-in" if ch.direction == INGRESS else "pass-eg"

    def verdict(fam: int | None) -> str:
        head = f"counter name {counter} "
        if action in (ACCEPT, DENY):
            head += flowlog.log(flowlog.cluster_id(ch.policy, ch.direction, index)) + " "
        if action == ACCEPT:
            return head + "accept"
        if action == DENY or fam is None:  # a Pass matching both families never occurs (peers are required)
            return head + "drop"
        if ch.tier != ADMIN:
            return head + f"goto {default_chain(ch.direction)}"
        return head + f"{IP_KEYWORD[fam]} {own} vmap @{pass_map}{fam}"
    return verdict


def _named_set(ch: ClusterChain, i: int) -> Callable[[int], str]:
    return lambda fam: nft_name("cnamed", ch.policy, SHORT[ch.direction], str(i), str(fam))


def default_chain(direction: str) -> str:
    """What a Baseline Pass leaves: the default, allow (a chain of its own, so that trace
    tells it from an Accept)."""
    return f"default/{SHORT[direction]}"


def chain_fragment(ch: ClusterChain) -> NftModel:
    frag = NftModel()
    if ch.tier != ADMIN and any(a == PASS for a, _ in ch.rules):
        frag.chains[default_chain(ch.direction)] = ("accept",)
    lines: list[str] = []
    for i, (action, r) in enumerate(ch.rules):
        counter = f"cnp/{ch.policy}/{ch.direction}/{i}"
        frag.counters.add(counter)
        lines.extend(rule_lines(ch.direction, r, frag, _verdict(ch, action, counter, i), _named_set(ch, i)))
    frag.chains[chain_name(ch.id)] = tuple(lines)
    return frag


def tier_chain_name(tier: str, direction: str, cids: tuple[str, ...]) -> str:
    """The chain of one tier's policies for one direction (`cids`, a PodPolicy tier list),
    shared by every pod with that list. Named after the set of policies, not their order,
    so a priority edit rewrites this chain and no pod's chain."""
    key = (tier, direction, cids)
    hit = _TIER_NAMES.get(key)
    if hit is None:
        if len(_TIER_NAMES) > 100_000:
            _TIER_NAMES.clear()
        h = hashlib.sha1("\0".join(sorted(cids)).encode()).hexdigest()[:20]
        hit = _TIER_NAMES[key] = f"{'adm' if tier == ADMIN else 'base'}/{h}/{SHORT[direction]}"
    return hit


_TIER_NAMES: dict[tuple[str, str, tuple[str, ...]], str] = {}


def tier_fragment(tier: str, direction: str, cids: tuple[str, ...], chains: tuple[ClusterChain, ...]) -> NftModel:
    """The tier chain: first what lets a new connection skip the tier (calc's TierFilter:
    a peer address, or a TCP/UDP/SCTP port, that no rule of the list can match: `return`,
    the tier decides nothing), then a jump to each policy's chain in evaluation order."""
    frag = NftModel()
    f = tier_filter(chains)
    peer = "saddr" if direction == INGRESS else "daddr"
    rules = [f"{IP_KEYWORD[fam]} {peer} . meta l4proto != @" + _set(
        frag, f"type {ADDR_TYPE[fam]} . inet_proto; flags interval;",
        frozenset(f"{_interval(fam, lo, hi)} . 0-255" for lo, hi in f.peers[fam])) + " return" for fam in (4, 6)]
    if f.ports is not None:
        rules.append("meta l4proto { tcp, udp, sctp } meta l4proto . th dport != @" + _set(
            frag, "type inet_proto . inet_service; flags interval;",
            frozenset(f"{p.lower()} . {lo}-{hi}" if lo != hi else f"{p.lower()} . {lo}" for p, lo, hi in f.ports))
            + " return")
    frag.chains[tier_chain_name(tier, direction, cids)] = tuple(rules) + tuple(
        f"jump {chain_name(cid)}" for cid in cids)
    return frag
