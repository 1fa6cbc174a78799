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
The pod chains that jump here are policy.py's (`_render_pod`).
"""
from __future__ import annotations

from typing import Callable

from podnet.api.cluster_policy import ACCEPT, ADMIN, DENY, PASS
from podnet.calc.policy.cluster_compile import ClusterChain
from podnet.calc.policy.predicate import INGRESS
from podnet.dataplane.nft import flowlog
from podnet.dataplane.nft.families import IP_KEYWORD
from podnet.dataplane.nft.model import NftModel
from podnet.dataplane.nft.policy_rules import SHORT, nft_name, rule_lines


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
