"""Render a NatPlan (calc/nat.py) into table `inet podnet-nat`. No I/O.

One postrouting chain at srcnat priority: a source in a natOutgoing pool going to a
destination outside every pool and the service CIDRs is masqueraded to the address of
the interface it leaves by (the node's IP); conntrack un-NATs the replies. The CIDRs
live in interval sets, so a pool change is a set rewrite. The table is an NftModel
(dataplane/nft/model.py), written as the policy renderer writes its own.
"""
from __future__ import annotations

from podnet.calc.nat import NatPlan
from podnet.dataplane.nft import model
from podnet.dataplane.nft.families import ADDR_TYPE, FAMILIES, IP_KEYWORD
from podnet.dataplane.nft.model import NftModel

TABLE = "podnet-nat"
BASE_CHAINS = {"postrouting": ("type nat hook postrouting priority srcnat; policy accept;", tuple(
    f"{IP_KEYWORD[f]} saddr @masq{f} {IP_KEYWORD[f]} daddr != @cluster{f} counter name masquerade{f} masquerade"
    for f in FAMILIES))}


def render(plan: NatPlan) -> NftModel:
    """The interval sets of source CIDRs to masquerade and of the cluster's own CIDRs, and
    the counters the postrouting rules name."""
    m = NftModel(counters={f"masquerade{f}" for f in FAMILIES})
    for f in FAMILIES:
        decl = f"type {ADDR_TYPE[f]}; flags interval;"
        m.sets[f"masq{f}"] = (decl, frozenset(plan.masquerade[f]))
        m.sets[f"cluster{f}"] = (decl, frozenset(plan.cluster[f]))
    return m


def full_script(plan: NatPlan) -> str:
    return model.full_script(TABLE, render(plan), base_chains=BASE_CHAINS)


def diff_script(old: NatPlan, new: NatPlan) -> str:
    """A changed CIDR set is rewritten whole (flush + add): interval sets are not edited in place."""
    return model.diff_script(TABLE, render(old), render(new))
