"""Render compiled NetworkPolicy (calc/policy/compile.py) into table `inet podnet-pol`. No I/O.

Layout (chosen by measuring at scale, see docs/design/policy.md):
- two base chains on the forward hook: `egress` (priority filter+5) then `ingress`
  (filter+10). Each accepts established/related first, then dispatches on the pod IP
  through a verdict map (`ip saddr vmap @eg4`, `ip daddr vmap @in4`, same for IPv6) to the
  pod's chain. An `accept` ends only the current base chain, so a packet between two
  local pods passes the egress check of one and the ingress check of the other.
- a pod chain `pod/<ns>/<name>/<in|eg>` jumps to the chain of every policy isolating it
  and ends with `drop`; a pod reaching itself (hairpin through a Service VIP) is accepted
  before, by `saddr . daddr` in the set of isolated pods' (ip . ip); a policy chain `pol/<ns>/<name>/<in|eg>` holds one rule per
  policy rule, family and match kind, each with a named counter
  and `accept`.
- counters are named `rule/<ns>/<policy>/<ingress|egress>/<i>`; sets are named by
  a hash of their content and shared by every rule with the same content.
- what changes lives in named sets: peers (interval sets of addresses), ports
  (`inet_proto . inet_service` intervals) and resolved named ports
  (`addr . inet_proto . inet_service`); each set is referenced by one or two rules only.
- anti-spoofing: packets entering from a known pod veth must carry that pod's address
  (`iifname . ip saddr` against the set of local pods), forwarded ones here, those
  addressed to the node itself in the `input` chain.
- host protection (issue 12 §1): the `input` base chain, the `pod-to-node` and
  `pod-to-host` chains and their sets come from dataplane/nft/host.py.
Per-packet cost: two map lookups, then per isolating policy a few set lookups,
independent of the number of pods.

`render(compiled)` gives an `NftModel`; `full_script` re-creates the table in one
transaction; `diff_script(old, new)` touches only changed sets, chains and map elements.
"""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Callable

from podnet.api.cluster_policy import ADMIN, BASELINE
from podnet.calc.policy.predicate import INGRESS
from podnet.api.objects import ObjectKey
from podnet.calc.host import HostProtection
from podnet.dataplane.nft import cluster_policy as cluster_nft
from podnet.dataplane.nft import flowlog
from podnet.dataplane.nft import host as host_nft
from podnet.dataplane.nft import model
from podnet.dataplane.nft.families import ADDR_TYPE, IP_KEYWORD
from podnet.dataplane.nft.model import NftModel
from podnet.dataplane.nft.policy_rules import SHORT, nft_name, rule_lines  # noqa: F401 (re-exported)
from podnet.calc.policy.cluster_compile import ClusterChain
from podnet.calc.policy.compile import CompiledPolicies, CompiledRule, PodPolicy, PolicyChain

TABLE = "podnet-pol"

BASE_CHAINS = {
    "egress": (
        "type filter hook forward priority filter + 5; policy accept;",
        ("iifname @pod-ifaces iifname . ip saddr != @pod-addr4 counter name spoofed " + flowlog.log(flowlog.SPOOFED) + " drop",
         "iifname @pod-ifaces iifname . ip6 saddr != @pod-addr6 counter name spoofed " + flowlog.log(flowlog.SPOOFED) + " drop",
         *host_nft.EGRESS_RULES,
         "ct state established,related accept",
         "ip saddr . ip daddr @self4 accept",
         "ip6 saddr . ip6 daddr @self6 accept",
         "ip saddr vmap @adm-eg4",   # the Admin tier's chain of the pod (returns when it decides nothing)
         "ip6 saddr vmap @adm-eg6",
         "ip saddr vmap @eg4",
         "ip6 saddr vmap @eg6")),
    "ingress": (
        "type filter hook forward priority filter + 10; policy accept;",
        ("ct state established,related accept",
         "ip saddr . ip daddr @self4 accept",
         "ip6 saddr . ip6 daddr @self6 accept",
         "ip daddr vmap @adm-in4",
         "ip6 daddr vmap @adm-in6",
         "ip daddr vmap @in4",
         "ip6 daddr vmap @in6")),
    "input": host_nft.INPUT_CHAIN,
}
STATIC_SETS = {
    "eg4": "type ipv4_addr : verdict;", "eg6": "type ipv6_addr : verdict;",
    "in4": "type ipv4_addr : verdict;", "in6": "type ipv6_addr : verdict;",
    "pod-ifaces": "type ifname;",
    "self4": "type ipv4_addr . ipv4_addr;", "self6": "type ipv6_addr . ipv6_addr;",
    "pod-addr4": "type ifname . ipv4_addr;", "pod-addr6": "type ifname . ipv6_addr;",
    # a pod's address -> `jump` the Admin tier chain of its policies (ClusterNetworkPolicy)
    "adm-in4": "type ipv4_addr : verdict;", "adm-in6": "type ipv6_addr : verdict;",
    "adm-eg4": "type ipv4_addr : verdict;", "adm-eg6": "type ipv6_addr : verdict;",
    # a pod's address -> `goto` its chain, which follows the Admin tier (ClusterNetworkPolicy Pass)
    "pass-in4": "type ipv4_addr : verdict;", "pass-in6": "type ipv6_addr : verdict;",
    "pass-eg4": "type ipv4_addr : verdict;", "pass-eg6": "type ipv6_addr : verdict;",
}
STATIC_COUNTERS = ("spoofed", *host_nft.COUNTERS)


def _rule_lines(ch: PolicyChain, r: CompiledRule, model: NftModel) -> list[str]:
    counter = f"rule/{r.ref.name}"
    model.counters.add(counter)
    fid = flowlog.allow_id(r.ref.namespace, r.ref.policy, r.ref.direction, r.ref.index)
    tail = f"counter name {counter} {flowlog.log(fid)} accept"
    return rule_lines(ch.direction, r, model, lambda fam: tail, lambda fam: nft_name(
        "named", r.ref.namespace, r.ref.policy, SHORT[r.ref.direction], str(r.ref.index), str(fam)))


def chain_name(kind: str, ns: str, name: str, direction: str) -> str:
    return nft_name(kind, ns, name, SHORT[direction])


# a pod's chains, its elements of the static sets, and its tier lists (tier, direction, chain ids)
PodFragment = tuple[dict[str, tuple[str, ...]], list[tuple[str, str]], tuple[tuple[str, str, tuple[str, ...]], ...]]


class _Sum:
    """The union of fragments (NftModel) as the table holds it, kept by reference counts so
    that a sync adds and removes only the fragments that changed: sets and chains shared by
    several fragments (peer sets named by selectors, content-named sets, `default/` chains)
    stay while one fragment still has them, with the content of the last one added."""

    def __init__(self) -> None:
        self.sets: dict[str, tuple[str, frozenset[str]]] = {}
        self.chains: dict[str, tuple[str, ...]] = {}
        self.counters: dict[str, int] = {}
        self._sets_n: dict[str, int] = {}
        self._chains_n: dict[str, int] = {}
        self.touched: tuple[set[str], set[str], set[str]] = (set(), set(), set())  # since the last render

    def add(self, frag: NftModel) -> None:
        self.touched[0].update(frag.sets)
        self.touched[2].update(frag.counters)
        for name, v in frag.sets.items():
            self.sets[name] = v
            self._sets_n[name] = self._sets_n.get(name, 0) + 1
        self.add_chains(frag.chains)
        for c in frag.counters:
            self.counters[c] = self.counters.get(c, 0) + 1

    def remove(self, frag: NftModel) -> None:
        self.touched[0].update(frag.sets)
        self.touched[2].update(frag.counters)
        for name in frag.sets:
            if self._sets_n[name] == 1:
                del self._sets_n[name], self.sets[name]
            else:
                self._sets_n[name] -= 1
        self.remove_chains(frag.chains)
        for c in frag.counters:
            if self.counters[c] == 1:
                del self.counters[c]
            else:
                self.counters[c] -= 1

    def add_chains(self, chains: dict[str, tuple[str, ...]]) -> None:
        self.touched[1].update(chains)
        for name, rules in chains.items():
            self.chains[name] = rules
            self._chains_n[name] = self._chains_n.get(name, 0) + 1

    def remove_chains(self, chains: dict[str, tuple[str, ...]]) -> None:
        self.touched[1].update(chains)
        for name in chains:
            if self._chains_n[name] == 1:
                del self._chains_n[name], self.chains[name]
            else:
                self._chains_n[name] -= 1


class RenderCache:
    """What `render` keeps between syncs (the caller owns it; `clear()` before a full one):
    per chain id the PolicyChain last rendered and its fragment, per pod its PodPolicy and
    fragment, per tier list its chains and fragment, and the sum of all those fragments
    (`_Sum`, with the static sets' elements counted per pod), so that a partial sync
    touches only the fragments that changed instead of summing them all again."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.chains: dict[str, tuple[PolicyChain, NftModel]] = {}
        self.pods: dict[ObjectKey, tuple[PodPolicy, PodFragment]] = {}
        self.cluster: dict[str, tuple[ClusterChain, NftModel]] = {}
        self.tiers: dict[tuple[str, str, tuple[str, ...]], tuple[tuple[ClusterChain, ...], NftModel]] = {}
        self.sum = _Sum()
        self.tier_count: dict[tuple[str, str, tuple[str, ...]], int] = {}  # pods per tier list
        self.static_count: dict[str, dict[str, int]] = {k: {} for k in STATIC_SETS}  # elements, pods each
        self.static: dict[str, tuple[str, frozenset[str]]] = {
            k: (decl, frozenset()) for k, decl in STATIC_SETS.items()}
        self.last: NftModel | None = None  # the model the last render returned


ChainCache = RenderCache  # the earlier name


def _policy_fragment(ch: PolicyChain) -> NftModel:
    frag = NftModel()
    lines: list[str] = []
    for r in ch.rules:
        lines.extend(_rule_lines(ch, r, frag))
    frag.chains[chain_name("pol", ch.namespace, ch.policy, ch.direction)] = tuple(lines)
    return frag


def _sync_fragments(have: dict, want: dict, render_one, total: _Sum) -> None:
    """Bring `have` (id -> (source, fragment)) to `want` (id -> source): a fragment whose
    source is the very same object stays, others are rendered again; `total` follows."""
    for cid, src in want.items():
        hit = have.get(cid)
        if hit is not None:
            if hit[0] is src:
                continue
            total.remove(hit[1])
        frag = render_one(src)
        total.add(frag)
        have[cid] = (src, frag)
    if len(have) != len(want):  # (have holds every id of want now) some ids are gone
        for cid in [k for k in have if k not in want]:
            total.remove(have.pop(cid)[1])


def render(c: CompiledPolicies, cache: RenderCache | None = None,
           host: HostProtection | None = None) -> NftModel:
    """With `cache`, an unchanged chain (the same object, reused by a partial compile) is not
    rendered again, nor an unchanged pod, nor a tier list whose policies' chains are the
    same; and only what changed is added to or removed from the sum of the fragments."""
    cache = cache if cache is not None else RenderCache()
    total = cache.sum
    _sync_fragments(cache.chains, c.chains, _policy_fragment, total)
    _sync_fragments(cache.cluster, c.cluster, cluster_nft.chain_fragment, total)
    changed_static: set[str] = set()
    for key, pp in c.pods.items():
        phit = cache.pods.get(key)
        if phit is not None:
            if phit[0] is pp:
                continue
            if phit[0] == pp:
                cache.pods[key] = (pp, phit[1])
                continue
            _pod_out(cache, phit[1], changed_static)
        frag = _render_pod(pp)
        _pod_in(cache, frag, changed_static)
        cache.pods[key] = (pp, frag)
    if len(cache.pods) != len(c.pods):
        for key in [k for k in cache.pods if k not in c.pods]:
            _pod_out(cache, cache.pods.pop(key)[1], changed_static)
    # the tier chains: rendered again when one of their policies' chains changed
    for tk in [tk for tk in cache.tiers if tk not in cache.tier_count]:
        total.remove(cache.tiers.pop(tk)[1])
    for tk in cache.tier_count:
        chs = tuple(c.cluster[cid] for cid in tk[2])
        thit = cache.tiers.get(tk)
        if thit is not None and len(thit[0]) == len(chs) and all(a is b for a, b in zip(thit[0], chs)):
            continue
        if thit is not None:
            total.remove(thit[1])
        tier_frag = cluster_nft.tier_fragment(tk[0], tk[1], tk[2], chs)
        total.add(tier_frag)
        cache.tiers[tk] = (chs, tier_frag)
    for name in changed_static:
        cache.static[name] = (STATIC_SETS[name], frozenset(cache.static_count[name]))
    m = NftModel()
    hs = host_nft.host_sets(host)
    m.sets.update(hs)
    m.sets.update(total.sets)
    m.sets.update(cache.static)
    m.chains = dict(total.chains)
    m.counters = set(total.counters)
    if cache.last is not None:  # what diff_script needs to compare against the last model
        m.delta = (cache.last, frozenset(total.touched[0] | changed_static | set(hs)),
                   frozenset(total.touched[1]), frozenset(total.touched[2]))
    total.touched = (set(), set(), set())
    cache.last = m
    return m


def _pod_in(cache: RenderCache, frag: PodFragment, changed_static: set[str]) -> None:
    chains, elems, tier_keys = frag
    cache.sum.add_chains(chains)
    for set_name, e in elems:
        counts = cache.static_count[set_name]
        counts[e] = counts.get(e, 0) + 1
        changed_static.add(set_name)
    for tk in tier_keys:
        cache.tier_count[tk] = cache.tier_count.get(tk, 0) + 1


def _pod_out(cache: RenderCache, frag: PodFragment, changed_static: set[str]) -> None:
    chains, elems, tier_keys = frag
    cache.sum.remove_chains(chains)
    for set_name, e in elems:
        counts = cache.static_count[set_name]
        if counts[e] == 1:
            del counts[e]
        else:
            counts[e] -= 1
        changed_static.add(set_name)
    for tk in tier_keys:
        if cache.tier_count[tk] == 1:
            del cache.tier_count[tk]
        else:
            cache.tier_count[tk] -= 1


_POD_FRAGMENTS: dict[PodPolicy, PodFragment] = {}


def _render_pod(pp: PodPolicy) -> PodFragment:
    """A pod's chains and its elements of the static maps/sets; memoised on the (frozen,
    hashable) PodPolicy, as most pods are unchanged from one sync to the next."""
    hit = _POD_FRAGMENTS.get(pp)
    if hit is not None:
        return hit
    if len(_POD_FRAGMENTS) > 200_000:
        _POD_FRAGMENTS.clear()
    key = pp.key
    chains: dict[str, tuple[str, ...]] = {}
    out: list[tuple[str, str]] = []
    tier_keys: list[tuple[str, str, tuple[str, ...]]] = []
    for direction, cids, mapname in ((INGRESS, pp.ingress, "in"), ("egress", pp.egress, "eg")):
        admin, base = pp.tier_chains(ADMIN, direction), pp.tier_chains(BASELINE, direction)
        if cids is None and not admin and not base:
            continue
        pc = chain_name("pod", key.namespace, key.name, direction)
        if cids is not None:  # NetworkPolicy isolates: it decides, Baseline is never reached
            rest = tuple(
                f"jump {chain_name('pol', cid.rsplit('/', 2)[0], cid.rsplit('/', 2)[1], direction)}" for cid in cids
            ) + (f"counter {flowlog.log(flowlog.isolated_id(key.namespace, key.name, direction))} drop",)
        elif base:  # Baseline tier (a chain shared by the pods it selects), then the default: allow
            bname = cluster_nft.tier_chain_name(BASELINE, direction, base)
            tier_keys.append((BASELINE, direction, base))
            rest = (f"jump {bname}", "accept")
        else:
            rest = ("accept",)
        if admin:
            # The Admin tier comes first, from the base chain (the adm-* maps: a shared tier
            # chain, no chain of the pod's own); its Pass rules `goto` the pod's chain through
            # the pass-* maps, and that chain always ends in a verdict, so evaluation never
            # returns to the rest of the Admin tier
            aname = cluster_nft.tier_chain_name(ADMIN, direction, admin)
            tier_keys.append((ADMIN, direction, admin))
            for ip in pp.ips:
                fam = 6 if ':' in ip else 4
                out.append((f"adm-{mapname}{fam}", f"{ip} : jump {aname}"))
                out.append((f"pass-{mapname}{fam}", f"{ip} : goto {pc}"))
        chains[pc] = rest
        for ip in pp.ips:
            out.append((f"{mapname}{6 if ':' in ip else 4}", f"{ip} : jump {pc}"))
    if (pp.ingress is not None or pp.egress is not None or pp.admin_ingress or pp.admin_egress
            or pp.baseline_ingress or pp.baseline_egress):
        # A pod reaching itself (hairpin through a Service VIP) passes, as calc decides.
        out.extend((f"self{6 if ':' in ip else 4}", f"{ip} . {ip}") for ip in pp.ips)
    if pp.iface:
        out.append(("pod-ifaces", f'"{pp.iface}"'))
        for ip in pp.ips:
            out.append((f"pod-addr{6 if ':' in ip else 4}", f'"{pp.iface}" . {ip}'))
    _POD_FRAGMENTS[pp] = (chains, out, tuple(tier_keys))
    return _POD_FRAGMENTS[pp]


# ---- scripts --------------------------------------------------------------------------
def full_script(m: NftModel) -> str:
    """Re-create the table whole: stale objects of any earlier version vanish with it."""
    return model.full_script(TABLE, m, STATIC_COUNTERS, host_nft.CHAINS, BASE_CHAINS)


def diff_script(old: NftModel, new: NftModel) -> str:
    """Only what changed, ordered so that nothing is deleted while still referenced."""
    return model.diff_script(TABLE, old, new)
