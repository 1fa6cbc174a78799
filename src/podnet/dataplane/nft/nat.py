"""Render a NatPlan (calc/nat.py) into table `inet podnet-nat`. No I/O.

One postrouting chain at srcnat priority: a source in a natOutgoing pool going to a
destination outside every pool and the service CIDRs is masqueraded to the address of
the interface it leaves by (the node's IP); conntrack un-NATs the replies. The CIDRs
live in interval sets, so a pool change is a set rewrite.
"""
from __future__ import annotations

from podnet.calc.nat import NatPlan
from podnet.dataplane.nft.families import ADDR_TYPE, IP_KEYWORD, TABLE_FAMILY

TABLE = "podnet-nat"
T = f"{TABLE_FAMILY} {TABLE}"


def _sets(plan: NatPlan) -> dict[str, tuple[int, tuple[str, ...]]]:
    return {f"masq{f}": (f, plan.masquerade[f]) for f in (4, 6)} | \
        {f"cluster{f}": (f, plan.cluster[f]) for f in (4, 6)}


def _fill(name: str, elems: tuple[str, ...]) -> list[str]:
    return [f"add element {T} {name} {{ {', '.join(elems)} }}"] if elems else []


def full_script(plan: NatPlan) -> str:
    out = [f"add table {T}", f"delete table {T}", f"add table {T}"]
    for name, (fam, elems) in _sets(plan).items():
        out.append(f"add set {T} {name} {{ type {ADDR_TYPE[fam]}; flags interval; }}")
        out.extend(_fill(name, elems))
    out.append(f"add chain {T} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}")
    for f in (4, 6):
        out.append(f"add rule {T} postrouting {IP_KEYWORD[f]} saddr @masq{f} {IP_KEYWORD[f]} daddr != @cluster{f} "
                   f"counter name masquerade{f} masquerade")
    out[3:3] = [f"add counter {T} masquerade{f}" for f in (4, 6)]
    return "\n".join(out) + "\n"


def diff_script(old: NatPlan, new: NatPlan) -> str:
    out: list[str] = []
    o = _sets(old)
    for name, (fam, elems) in _sets(new).items():
        if o[name][1] != elems:
            out.append(f"flush set {T} {name}")
            out.extend(_fill(name, elems))
    return "\n".join(out) + ("\n" if out else "")
