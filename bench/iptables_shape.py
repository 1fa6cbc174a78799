"""kube-proxy iptables mode's structure written by hand in nft syntax: a linear chain of
per-service match rules, a chain per service with one random-choice rule per endpoint, a
chain per endpoint that DNATs. A baseline of bench/services.py. Pure.
"""
from __future__ import annotations

import ipaddress

from podnet.calc.services import ServiceTable

LT = "inet pn-bench-linear"


def linear_full(table: ServiceTable) -> str:
    out = [f"add table {LT}", f"delete table {LT}", f"add table {LT}",
           f"add chain {LT} nat-prerouting {{ type nat hook prerouting priority dstnat ; policy accept ; }}",
           f"add chain {LT} services"]
    rules = [f"add rule {LT} nat-prerouting jump services"]
    for (eid, fam), e in sorted(table.entries.items(), key=lambda kv: int(ipaddress.ip_address(kv[1].vip))):
        chain = f"svc-{e.name}"
        out.append(f"add chain {LT} {chain}")
        rules.append(f"add rule {LT} services ip daddr {e.vip} meta l4proto tcp th dport {e.port} goto {chain}")
        rules += linear_service_rules(e)
        for i, ep in enumerate(e.endpoints):
            out.append(f"add chain {LT} sep-{e.name}-{i}")
    return "\n".join(out + rules + [linear_sep_rules(e) for e in table.entries.values()]) + "\n"


def linear_service_rules(e) -> list[str]:
    """iptables' `-m statistic --probability 1/(n-i)` cascade, as numgen draws."""
    chain = f"svc-{e.name}"
    n = len(e.endpoints)
    rules = [f"add rule {LT} {chain} numgen random mod {n - i} 0 goto sep-{e.name}-{i}" for i in range(n - 1)]
    rules.append(f"add rule {LT} {chain} goto sep-{e.name}-{n - 1}")
    return rules


def linear_sep_rules(e) -> str:
    return "\n".join(f"add rule {LT} sep-{e.name}-{i} meta l4proto tcp dnat ip to {ep.ip}:{ep.port}"
                     for i, ep in enumerate(e.endpoints))


def linear_change(e_old, e_new) -> str:
    """kube-proxy rewrites the changed service's chains: flush it, add/remove sep chains."""
    chain = f"svc-{e_new.name}"
    out = [f"flush chain {LT} {chain}"]
    for i in range(len(e_new.endpoints)):
        out += [f"add chain {LT} sep-{e_new.name}-{i}", f"flush chain {LT} sep-{e_new.name}-{i}"]
    out += linear_service_rules(e_new)
    out.append(linear_sep_rules(e_new))
    for i in range(len(e_new.endpoints), len(e_old.endpoints)):
        out += [f"flush chain {LT} sep-{e_old.name}-{i}", f"delete chain {LT} sep-{e_old.name}-{i}"]
    return "\n".join(out) + "\n"
