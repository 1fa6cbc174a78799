"""Render the service table (calc.services) as nftables text for table `inet podnet-svc`:
a full sync script, or a partial one that touches only what changed. Pure: no I/O.

Layout (measured, see docs/design/services.md): chains hold static rules, maps hold data.
- `svc4`/`svc6`: verdict map VIP . l4proto . port -> `jump` the service port's chain;
  `np4`/`np6`: l4proto . nodePort -> the same chain, for packets to a node IP. An
  external IP . l4proto . port is an element of `svc4`/`svc6` too, jumping to the
  external path (the same as the nodePort's); `extips4`/`extips6` hold those addresses
  for the masquerade.
- A service port's chain only draws the endpoint: `meta mark set numgen random mod N
  offset <mark of its slot>` (uniform), or, with ClientIP affinity, first looks the client
  up in one dynamic set per endpoint (kube-proxy's `@affinity-*` sets) and returns.
- ONE rule per family and protocol then DNATs: `dnat ip to meta mark map @ep4`; the mark
  names (slot, bucket), so VIP and NodePort traffic share the map. A rule per service
  referencing a shared map costs minutes at 10k services; one anonymous vmap per service
  ~20 s; this layout loads 10k services x 10 endpoints in ~1 s.
- The scratch mark is cleared right after NAT; reject of no-endpoint ports happens in
  filter chains before NAT; masquerade (NodePort, hairpin) in postrouting keys on
  conntrack's original destination and on `saddr . daddr` pairs, not on marks.
The in-memory `Rendered` state is what partial syncs diff against: the kernel is never
listed. One service port's chain is service_chains.py's. Elements are claimed per service port, because a hairpin pair can belong to many.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from podnet.calc.services import ServicePortEntry, ServiceTable
from podnet.dataplane.nft import fastpath, flowlog
from podnet.dataplane.nft.families import ADDR_TYPE, FAMILIES, IP_KEYWORD, TABLE_FAMILY
from podnet.dataplane.nft.service_chains import (MARK_MASK, MARK_TAG, MAX_SLOTS, NO_MASQ_CT_MARK, EntryRender,
                                                 render_entry)

TABLE = "podnet-svc"
T = f"{TABLE_FAMILY} {TABLE}"
# (name, type) of every set/map per family; {a} is the address type
_SETS = (
    ("svc", "map", "{a} . inet_proto . inet_service : verdict"),
    ("ep", "map", "mark : {a} . inet_service"),
    ("noep", "set", "{a} . inet_proto . inet_service"),
    ("np", "map", "inet_proto . inet_service : verdict"),
    ("npnoep", "set", "inet_proto . inet_service"),
    ("nodeips", "set", "{a}"),
    ("hairpin", "set", "{a} . {a}"),
    ("vips", "set", "{a}"),
    ("extips", "set", "{a}"),
    ("podcidrs", "set", "{a} ; flags interval"),
)
# the layouts a partial sync's elements are sent in without libnftables (fastpath.py)
fastpath.declare_sets(TABLE_FAMILY, TABLE, {
    f"{name}{fam}": typ.format(a=ADDR_TYPE[fam]) for fam in FAMILIES for name, _, typ in _SETS if "flags" not in typ})
# ---- state kept between syncs ------------------------------------------------------------
Key = tuple[str, int]


@dataclass
class Rendered:
    """What the kernel holds (after a committed sync), in the renderer's own terms."""
    node_ips: tuple[str, ...] = ()
    pod_cidrs: tuple[str, ...] = ()
    entries: dict[Key, EntryRender] = field(default_factory=dict)
    # (set, key) -> (entry, value) the kernel holds; later claimants of the same key wait
    # in `waiting`. Shared keys (a hairpin pair) have equal values; a duplicate nodePort in
    # bad input has another value and waits its turn instead of failing the transaction.
    claims: dict[tuple[str, str], tuple[Key, str]] = field(default_factory=dict)
    slots: dict[Key, int] = field(default_factory=dict)
    free_slots: list[int] = field(default_factory=list)
    next_slot: int = 1

    def slot_for(self, k: Key) -> int | None:
        """The entry's slot, kept while the entry lives; None when all are taken."""
        if k in self.slots:
            return self.slots[k]
        if self.free_slots:
            slot = self.free_slots.pop()
        elif self.next_slot <= MAX_SLOTS:
            slot, self.next_slot = self.next_slot, self.next_slot + 1
        else:
            return None
        self.slots[k] = slot
        return slot

    def drop_slot(self, k: Key) -> None:
        slot = self.slots.pop(k, None)
        if slot is not None:
            self.free_slots.append(slot)
    waiting: dict[tuple[str, str], list[tuple[Key, str]]] = field(default_factory=dict)

    def active(self, sk: tuple[str, str]) -> str | None:
        c = self.claims.get(sk)
        return c[1] if c else None

    def claim(self, k: Key, elements: Iterable[tuple[str, str, str]]) -> None:
        claims = self.claims
        new = {(s, key): (k, val) for s, key, val in elements}
        if claims.keys().isdisjoint(new):  # the common case, at C speed
            claims.update(new)
            return
        for sk, c in new.items():
            if sk in claims:
                self.waiting.setdefault(sk, []).append(c)
            else:
                claims[sk] = c

    def release(self, k: Key, elements: Iterable[tuple[str, str, str]]) -> None:
        for s, key, val in elements:
            sk, c = (s, key), (k, val)
            w = self.waiting.get(sk)
            if self.claims.get(sk) == c:
                if w:
                    self.claims[sk] = w.pop(0)
                else:
                    del self.claims[sk]
            elif w and c in w:
                w.remove(c)
            if w is not None and not w:
                del self.waiting[sk]

    def kernel_elements(self) -> list[tuple[str, str, str]]:
        return [(s, key, c[1]) for (s, key), c in self.claims.items()]


# ---- text --------------------------------------------------------------------------------
def _elements_cmds(verb: str, items: Iterable[tuple[str, str, str]], sort: bool = True) -> list[str]:
    """One command per set. A full sync's items already come in entry order (stable),
    so sorting 10^5 strings is left to the small partial syncs."""
    by_set: dict[str, list[str]] = {}
    for s, key, val in items:
        by_set.setdefault(s, []).append(f"{key} : {val}" if val and verb == "add" else key)
    return [f"{verb} element {T} {s} {{ {', '.join(sorted(v) if sort else v)} }}"
            for s, v in sorted(by_set.items())]


def _chain_cmds(chain: str, rules: Iterable[str]) -> list[str]:
    return [f"add rule {T} {chain} {r}" for r in rules]


def _set_decl(name: str, fam: int, timeout: int) -> str:
    return (f"add set {T} {name} {{ type {ADDR_TYPE[fam]} ; flags dynamic,timeout ; "
            f"timeout {timeout}s ; }}")


def _static() -> list[str]:
    out = []
    for fam in FAMILIES:
        for name, kind, typ in _SETS:
            out.append(f"add {kind} {T} {name}{fam} {{ type {typ.format(a=ADDR_TYPE[fam])} ; }}")
    base = [("nat-prerouting", "nat", "prerouting", "dstnat", ["jump services"]),
            ("nat-output", "nat", "output", "-100", ["jump services"]),
            ("nat-postrouting", "nat", "postrouting", "srcnat", ["jump masquerading"]),
            ("filter-prerouting", "filter", "prerouting", "dstnat - 10", ["ct state new jump reject-check"]),
            ("filter-output", "filter", "output", "-110", ["ct state new jump reject-check"]),
            ("mark-clear-prerouting", "filter", "prerouting", "dstnat + 10", ["jump mark-clear"]),
            ("mark-clear-output", "filter", "output", "-90", ["jump mark-clear"])]
    # every chain exists before any rule jumps to it
    rules_after: list[str] = []
    for name, typ, hook, prio, rules in base:
        out.append(f"add chain {T} {name} {{ type {typ} hook {hook} priority {prio} ; policy accept ; }}")
        rules_after += _chain_cmds(name, rules)
    regular: dict[str, list[str]] = {
        "services": [], "endpoint-dnat": [], "masquerading": [], "reject-check": [],
        "mark-clear": [f"meta mark & {MARK_MASK:#010x} == {MARK_TAG:#010x} meta mark set 0x00000000"],
        # logged with the id the agent's flow records name (issue 18 §1)
        "do-reject": [f"meta l4proto tcp {flowlog.log(flowlog.NO_ENDPOINTS)} reject with tcp reset",
                      f"{flowlog.log(flowlog.NO_ENDPOINTS)} reject with icmpx type port-unreachable"],
    }
    for fam in FAMILIES:
        ip = IP_KEYWORD[fam]
        regular["services"] += [
            f"{ip} daddr . meta l4proto . th dport vmap @svc{fam}",
            f"{ip} daddr @nodeips{fam} meta l4proto . th dport vmap @np{fam}",
        ]
        # a port mapping needs a protocol match first (nft refuses it otherwise), so one
        # rule per protocol; a data map referenced by 3 rules costs nothing extra to load
        regular["endpoint-dnat"] += [f"meta nfproto {'ipv4' if fam == 4 else 'ipv6'} meta l4proto {p} "
                            f"dnat {ip} to meta mark map @ep{fam}" for p in ("tcp", "udp", "sctp")]
        regular["masquerading"] += [
            f"ct status dnat {ip} saddr . {ip} daddr @hairpin{fam} masquerade",
            f"ct status dnat ct mark & {NO_MASQ_CT_MARK:#010x} == 0 ct original {ip} daddr @nodeips{fam} masquerade",
            # an external IP is an external destination too (kube-proxy masquerades it alike)
            f"ct status dnat ct mark & {NO_MASQ_CT_MARK:#010x} == 0 ct original {ip} daddr @extips{fam} masquerade",
            # a ClusterIP reached from outside the pod CIDRs: the reply must come back here
            f"ct status dnat ct original {ip} daddr @vips{fam} {ip} saddr != @podcidrs{fam} masquerade",
        ]
        regular["reject-check"] += [
            f"{ip} daddr . meta l4proto . th dport @noep{fam} goto do-reject",
            f"{ip} daddr @nodeips{fam} meta l4proto . th dport @npnoep{fam} goto do-reject",
        ]
    # after the service lookups: only a packet that a service chain marked goes on to NAT
    regular["services"].append(f"meta mark & {MARK_MASK:#010x} == {MARK_TAG:#010x} goto endpoint-dnat")
    # a ClusterIP answers only on its Service's ports; anything else is refused at once,
    # as kube-proxy does, instead of wandering off along the default route
    regular["services"] += [f"{IP_KEYWORD[fam]} daddr @vips{fam} goto do-reject" for fam in FAMILIES]
    for name, rules in regular.items():
        out.append(f"add chain {T} {name}")
        rules_after += _chain_cmds(name, rules)
    return out + rules_after


def _node_ip_elements(ips: Iterable[str]) -> list[tuple[str, str, str]]:
    return [(f"nodeips{6 if ':' in ip else 4}", ip, "") for ip in ips]


def _pod_cidr_elements(cidrs: Iterable[str]) -> list[tuple[str, str, str]]:
    return [(f"podcidrs{6 if ':' in c else 4}", c, "") for c in cidrs]


def render_full(table: ServiceTable, prev: Rendered | None) -> tuple[str, Rendered]:
    """A script that makes the table exactly `table`. With `prev` (the state of the last
    committed sync) the table is flushed rather than deleted, so ClientIP affinity sets of
    surviving endpoints keep their clients; without it the table is recreated."""
    out = [f"add table {T}"]
    if prev is None:
        out += [f"delete table {T}", f"add table {T}"]
    else:
        out.append(f"flush table {T}")
        for fam in FAMILIES:
            for name, kind, _ in _SETS:
                out.append(f"flush {kind} {T} {name}{fam}")
    state = Rendered(node_ips=table.node_ips, pod_cidrs=table.pod_cidrs)
    rendered = {}
    for k, e in sorted(table.entries.items()):
        slot = state.slot_for(k)
        if slot is not None:  # beyond 65535 service ports a node proxies nothing more
            rendered[k] = render_entry(e, slot)
    keep_sets = {s for r in rendered.values() for s, _, _ in r.affinity_sets}
    keep_chains = {c for r in rendered.values() for c, _ in r.chains}
    if prev is not None:
        for r in prev.entries.values():
            out += [f"delete chain {T} {c}" for c, _ in r.chains if c not in keep_chains]
            out += [f"delete set {T} {s}" for s, _, _ in r.affinity_sets if s not in keep_sets]
    out += _static()
    for k, r in rendered.items():
        state.entries[k] = r
        state.claim(k, r.elements)
        out += [_set_decl(*s) for s in r.affinity_sets]
        for c, rules in r.chains:
            out.append(f"add chain {T} {c}")
            out += _chain_cmds(c, rules)
    out += _elements_cmds("add", _node_ip_elements(table.node_ips) + _pod_cidr_elements(table.pod_cidrs)
                          + state.kernel_elements(), sort=False)
    return "\n".join(out) + "\n", state


def render_partial(state: Rendered, changed: Mapping[Key, ServicePortEntry | None],
                   node_ips: tuple[str, ...] | None = None,
                   pod_cidrs: tuple[str, ...] | None = None) -> str:
    """Update `state` in place to the new entries (None: gone) and return the script that
    takes the kernel there; "" when nothing changes. Order matters to the kernel: map
    elements go before the chains they jump to, chains are flushed before deleted, new
    chains exist before elements jump to them."""
    before: dict[tuple[str, str], str | None] = {}  # kernel value of each touched element
    del_elems: list[tuple[str, str]] = []
    add_elems: list[tuple[str, str, str]] = []
    del_chains: list[str] = []
    del_sets: list[str] = []
    new_chains: list[str] = []
    if node_ips is not None and tuple(sorted(node_ips)) != state.node_ips:
        old, new = set(state.node_ips), set(node_ips)
        del_elems += [(s, k) for s, k, _ in _node_ip_elements(sorted(old - new))]
        add_elems += _node_ip_elements(sorted(new - old))
        state.node_ips = tuple(sorted(new))
    if pod_cidrs is not None and tuple(pod_cidrs) != state.pod_cidrs:
        old, new = set(state.pod_cidrs), set(pod_cidrs)
        del_elems += [(s, k) for s, k, _ in _pod_cidr_elements(sorted(old - new))]
        add_elems += _pod_cidr_elements(sorted(new - old))
        state.pod_cidrs = tuple(pod_cidrs)
    for k in sorted(changed):
        e = changed[k]
        old_r = state.entries.get(k)
        slot = state.slot_for(k) if e is not None else None
        new_r = render_entry(e, slot) if e is not None and slot is not None else None
        if old_r == new_r:
            continue
        old_els = frozenset(old_r.elements) if old_r else frozenset()
        new_els = frozenset(new_r.elements) if new_r else frozenset()
        for sk in {(x[0], x[1]) for x in old_els ^ new_els}:
            before.setdefault(sk, state.active(sk))
        state.release(k, sorted(old_els - new_els))
        state.claim(k, sorted(new_els - old_els))
        if new_r is None:
            state.entries.pop(k, None)
            state.drop_slot(k)
        else:
            state.entries[k] = new_r
        old_sets = {s for s, _, _ in old_r.affinity_sets} if old_r else set()
        new_sets = {s for s, _, _ in new_r.affinity_sets} if new_r else set()
        old_chains = dict(old_r.chains) if old_r else {}
        new_chains_of = dict(new_r.chains) if new_r else {}
        del_chains += [c for c in old_chains if c not in new_chains_of]
        for c, rules in new_chains_of.items():
            if old_chains.get(c) != rules:
                new_chains.append(f"add chain {T} {c}")
                new_chains.append(f"flush chain {T} {c}")
                new_chains += _chain_cmds(c, rules)
        del_sets += sorted(old_sets - new_sets)
        new_chains[:0] = [_set_decl(*s) for s in (new_r.affinity_sets if new_r else ())
                          if s[0] not in old_sets]
    for sk, was in sorted(before.items()):
        now = state.active(sk)
        if was != now:
            if was is not None:
                del_elems.append(sk)
            if now is not None:
                add_elems.append((sk[0], sk[1], now))
    # an element deleted and re-added with another value in one sync: delete first
    out = _elements_cmds("delete", ((s, k, "") for s, k in del_elems))
    # every gone chain is emptied before any is deleted: one may jump to another (-ext)
    out += [f"flush chain {T} {c}" for c in del_chains]
    out += [f"delete chain {T} {c}" for c in del_chains]
    out += new_chains
    out += [f"delete set {T} {s}" for s in del_sets]
    out += _elements_cmds("add", add_elems)
    return "\n".join(out) + "\n" if out else ""
