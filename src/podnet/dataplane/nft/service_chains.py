"""One service port's chain as nftables rules: how it draws an endpoint (the scratch mark
names the endpoint's slot and bucket), its affinity sets, its names. Pure: no I/O. The
table around it, and full and partial syncs, are services.py's.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from podnet.calc.services import EndpointAddr, ServicePortEntry
from podnet.dataplane.nft.families import IP_KEYWORD

# The scratch mark: tag 0x5 in the top 4 bits, the service port's slot in the next 16,
# the endpoint's bucket in the low 12. One mark names one endpoint of one service port, so
# the endpoint map is keyed on the mark alone (half the load time of a VIP.proto.port.mark
# key) and NodePort traffic uses the same map.
MARK_TAG = 0x50000000
MARK_MASK = 0xF0000000
SLOT_SHIFT = 12
MAX_ENDPOINTS = 1 << SLOT_SHIFT
MAX_SLOTS = (1 << 16) - 1
# conntrack mark bit of a NodePort connection of an externalTrafficPolicy: Local Service:
# it went to an endpoint on this node, so the NodePort masquerade leaves its source alone
NO_MASQ_CT_MARK = 0x00100000

_NAME_BAD = re.compile(r"[^A-Za-z0-9/_.-]")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def chain_name(e: ServicePortEntry) -> str:
    return f"svc{e.family}-{_hash(f'{e.family}|{e.id}')}-{_NAME_BAD.sub('_', e.id)}"[:200]


def affinity_set_name(e: ServicePortEntry, ip: str, port: int) -> str:
    return f"aff{e.family}-{_hash(f'{e.family}|{e.id}|{ip}|{port}')}"


def mark(slot: int, bucket: int = 0) -> str:
    return f"{MARK_TAG | slot << SLOT_SHIFT | bucket:#010x}"


# ---- per entry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EntryRender:
    chains: tuple[tuple[str, tuple[str, ...]], ...]  # (name, rules); none without endpoints
    elements: tuple[tuple[str, str, str], ...]  # (set, key, value or ""), in a fixed order
    affinity_sets: tuple[tuple[str, int, int], ...]  # (name, family, timeout)


def _draw_rules(e: ServicePortEntry, slot: int, sets: tuple[tuple[str, int, int], ...],
                first: int, n: int) -> list[str]:
    """Choose one of buckets first..first+n-1: affinity first, then numgen."""
    ip = IP_KEYWORD[e.family]
    draw = f"meta mark set numgen random mod {n} offset {mark(slot, first)}"
    if not e.affinity_timeout:
        return [draw]
    mine = list(enumerate(sets))[first:first + n]
    rules = [f"{ip} saddr @{s} meta mark set {mark(slot, i)} update @{s} {{ {ip} saddr }} return"
             for i, (s, _, _) in mine]
    rules.append(draw)
    rules += [f"meta mark {mark(slot, i)} update @{s} {{ {ip} saddr }} return" for i, (s, _, _) in mine]
    return rules


Range = tuple[int, int]  # (first bucket, how many)


def _layout(e: ServicePortEntry, cluster_used: bool) -> tuple[tuple[EndpointAddr, ...], Range, Range]:
    """The endpoints in bucket order, and the bucket ranges of the Cluster and the Local
    choice. The two sets may differ either way (each falls back to terminating endpoints
    on its own), so the order is Local-only, both, Cluster-only: each choice is one range."""
    if not (e.internal_local or e.external_local):
        eps = e.endpoints[:MAX_ENDPOINTS]
        return eps, (0, len(eps)), (0, 0)
    loc, clu = set(e.local_endpoints), set(e.endpoints) if cluster_used else set()
    local_only, both = sorted(loc - clu)[:MAX_ENDPOINTS], sorted(loc & clu)
    both = both[:MAX_ENDPOINTS - len(local_only)]
    cluster_only = sorted(clu - loc)[:MAX_ENDPOINTS - len(local_only) - len(both)]
    eps = tuple(local_only + both + cluster_only)
    return eps, (len(local_only), len(both) + len(cluster_only)), (0, len(local_only) + len(both))


def render_entry(e: ServicePortEntry, slot: int) -> EntryRender:
    fam = e.family
    proto = e.protocol.lower()
    els: list[tuple[str, str, str]] = [(f"vips{fam}", e.vip, "")]
    els += [(f"extips{fam}", ip, "") for ip in (*e.external_ips, *e.lb_ips)]
    if not e.endpoints:
        els += [(f"noep{fam}", f"{ip} . {proto} . {e.port}", "")
                for ip in (e.vip, *e.external_ips, *e.lb_ips)]
        if e.node_port:
            els.append((f"npnoep{fam}", f"{proto} . {e.node_port}", ""))
        return EntryRender((), tuple(els), ())
    # an eTP-Local external path short-circuits pods and the node to the Cluster chain
    external_used = e.externally_accessible and (not e.external_local or bool(e.local_endpoints))
    cluster_used = not e.internal_local or external_used
    eps, (c_first, c_n), (l_first, l_n) = _layout(e, cluster_used)
    sets = tuple((affinity_set_name(e, ep.ip, ep.port), fam, e.affinity_timeout)
                 for ep in eps) if e.affinity_timeout else ()
    chains: list[tuple[str, tuple[str, ...]]] = []
    cluster = local = "drop"  # the verdict of a path without endpoints on this node
    if cluster_used:
        cluster = chain_name(e)
        chains.append((cluster, tuple(_draw_rules(e, slot, sets, c_first, c_n))))
    if l_n:
        local = f"{chain_name(e)}-local"
        chains.append((local, tuple(_draw_rules(e, slot, sets, l_first, l_n))))
    external = cluster
    if e.external_local and l_n:
        external = f"{chain_name(e)}-ext"
        chains.append((external, _external_rules(fam, cluster, local)))
    elif e.external_local:
        external = "drop"
    els.append((f"svc{fam}", f"{e.vip} . {proto} . {e.port}", _verdict(local if e.internal_local else cluster)))
    if e.node_port:
        els.append((f"np{fam}", f"{proto} . {e.node_port}", _verdict(external)))
    els += [(f"svc{fam}", f"{ip} . {proto} . {e.port}", _verdict(external)) for ip in e.external_ips]
    lb = external
    if e.source_ranges and external != "drop":
        # loadBalancerSourceRanges (kube-proxy's firewall chain): other sources are dropped
        lb = f"{chain_name(e)}-fw"
        chains.append((lb, _firewall_rules(fam, e.source_ranges, external)))
    els += [(f"svc{fam}", f"{ip} . {proto} . {e.port}", _verdict(lb)) for ip in e.lb_ips]
    ep_set, hp_set, base = f"ep{fam}", f"hairpin{fam}", MARK_TAG | slot << SLOT_SHIFT
    for i, ep in enumerate(eps):
        els.append((ep_set, f"{base | i:#010x}", f"{ep.ip} . {ep.port}"))
        if ep.local:  # only a pod on this node can be its own client
            els.append((hp_set, f"{ep.ip} . {ep.ip}", ""))
    return EntryRender(tuple(chains), tuple(els), sets)


def _external_rules(fam: int, cluster: str, local: str) -> tuple[str, ...]:
    """externalTrafficPolicy Local applies only to traffic from outside the cluster
    (calc.service_paths.external_path): pods and the node itself reach every endpoint."""
    ip, keep = IP_KEYWORD[fam], f"ct mark set ct mark | {NO_MASQ_CT_MARK:#010x}"
    return (f"{ip} saddr @podcidrs{fam} {keep} goto {cluster}",
            f"fib saddr type local goto {cluster}",
            f"{keep} goto {local}")


def _firewall_rules(fam: int, ranges: tuple[str, ...], external: str) -> tuple[str, ...]:
    """A source in one of the ranges goes on to the external path; the rest is dropped.
    One prefix match per range, not `saddr != { ranges } drop`: that anonymous interval
    set is a set of its own in the kernel (one per LoadBalancer with ranges), and nft
    1.0.6 lists the elements of every interval set of the table, one netlink dump each,
    before each later transaction that adds an element (NFT_CACHE_SETELEM_MAYBE)."""
    ip = IP_KEYWORD[fam]
    return (*(f"{ip} saddr {r} goto {external}" for r in ranges), "drop")


def _verdict(chain: str) -> str:
    return chain if chain == "drop" else f"jump {chain}"
