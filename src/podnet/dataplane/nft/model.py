"""One way of writing an nftables table: a model of what it holds (`NftModel`: sets and maps
with their elements, regular chains with their rules, named counters) turned into a script
that re-creates the table whole (`full_script`) or changes only what differs from the last
model (`diff_script`). Pure: no I/O. The policy and NAT renderers build models; the service
proxy, whose 10,000 services need elements claimed per service port, keeps its own text
(services.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from podnet.dataplane.nft.families import TABLE_FAMILY


@dataclass
class NftModel:
    """What a table holds but its fixed chains (those `full_script` is given): sets and maps
    (name -> (declaration, elements); a map when the declaration says `: verdict`), regular
    chains (name -> rules) and named counters."""
    sets: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # name -> (decl, elements)
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    counters: set[str] = field(default_factory=set)
    # (base, set names, chain names, counter names): every name outside these holds the very
    # same object as in `base` (a renderer that knows what it touched says so; diff_script
    # then compares only these, when diffing against that base)
    delta: tuple["NftModel", frozenset[str], frozenset[str], frozenset[str]] | None = field(
        default=None, compare=False, repr=False)


def _q(name: str) -> str:
    # nft 1.0 takes object names unquoted; ours are prefixed identifiers of [a-z0-9/.-].
    return name


def _elements(table: str, name: str, elems: frozenset[str]) -> list[str]:
    if not elems:
        return []
    return [f"add element {TABLE_FAMILY} {table} {_q(name)} {{ {', '.join(sorted(elems))} }}"]


def full_script(table: str, m: NftModel, static_counters: Iterable[str] = (),
                after: Mapping[str, tuple[str, ...]] | None = None,
                base_chains: Mapping[str, tuple[str, tuple[str, ...]]] | None = None) -> str:
    """Re-create `table` whole (stale objects of any earlier version vanish with it): its
    counters, sets and chains, their rules and elements, then the fixed chains `after`
    (name -> rules) and the base chains (name -> (hook declaration, rules)), which jump
    to the others and so come last."""
    def _t(obj: str) -> str:
        return f"{TABLE_FAMILY} {table} {obj}"
    out = [f"add table {TABLE_FAMILY} {table}", f"delete table {TABLE_FAMILY} {table}", f"add table {TABLE_FAMILY} {table}"]
    for c in sorted(m.counters | set(static_counters)):
        out.append(f"add counter {_t(_q(c))}")
    for name, (decl, elems) in sorted(m.sets.items()):
        kind = "map" if ": verdict" in decl else "set"
        out.append(f"add {kind} {_t(_q(name))} {{ {decl} }}")
    for name in sorted(m.chains):
        out.append(f"add chain {_t(_q(name))}")
    for name, rules in sorted(m.chains.items()):
        out.extend(f"add rule {_t(_q(name))} {r}" for r in rules)
    for name, (_, elems) in sorted(m.sets.items()):
        out.extend(_elements(table, name, elems))
    for name in after or {}:
        out.append(f"add chain {_t(name)}")
    for name, rules in (after or {}).items():
        out.extend(f"add rule {_t(name)} {r}" for r in rules)
    for name, (hook, rules) in (base_chains or {}).items():
        out.append(f"add chain {_t(name)} {{ {hook} }}")
        out.extend(f"add rule {_t(name)} {r}" for r in rules)
    return "\n".join(out) + "\n"


def diff_script(table: str, old: NftModel, new: NftModel) -> str:
    """Only what changed, ordered so that nothing is deleted while still referenced."""
    def _t(obj: str) -> str:
        return f"{TABLE_FAMILY} {table} {obj}"
    out: list[str] = []
    if new.delta is not None and new.delta[0] is old:  # only the names the renderer touched
        _, set_names, chain_names, counter_names = new.delta
        new_sets = {n: new.sets[n] for n in set_names if n in new.sets}
        new_chains = {n: new.chains[n] for n in chain_names if n in new.chains}
        old_sets = {n: old.sets[n] for n in set_names if n in old.sets}
        old_chains = {n: old.chains[n] for n in chain_names if n in old.chains}
        new_counters = {c for c in counter_names if c in new.counters}
        old_counters = {c for c in counter_names if c in old.counters}
    else:
        new_sets, new_chains, old_sets, old_chains = new.sets, new.chains, old.sets, old.chains
        new_counters, old_counters = new.counters, old.counters
    for c in sorted(new_counters - old_counters):
        out.append(f"add counter {_t(_q(c))}")
    # unchanged parts are mostly the very same objects: skip those before sorting
    sets = sorted((n, v) for n, v in new_sets.items() if old.sets.get(n) is not v)
    chains = sorted((n, r) for n, r in new_chains.items() if old.chains.get(n) is not r)
    for name, (decl, elems) in sets:
        prev = old.sets.get(name)
        kind = "map" if ": verdict" in decl else "set"
        if prev is None:
            out.append(f"add {kind} {_t(_q(name))} {{ {decl} }}")
    for name, _ in chains:
        if name not in old.chains:
            out.append(f"add chain {_t(_q(name))}")
    # Sets before the rules that may now reference them. A changed interval set is rewritten
    # whole (flush + add): interval elements cannot be edited in place safely.
    for name, (decl, elems) in sets:
        prev = old.sets.get(name)
        if prev is not None and (name.startswith("set/") or prev[1] is elems or prev[1] == elems):
            continue  # content-named sets never change under the same name
        if "interval" not in decl and prev is not None:
            # plain sets and maps: edit in place, the element delta only
            gone, added = prev[1] - elems, elems - prev[1]
            if gone:
                out.append(f"delete element {_t(_q(name))} {{ {', '.join(sorted(k.split(' : ')[0] for k in gone))} }}")
            out.extend(_elements(table, name, frozenset(added)))
            continue
        if prev is not None:
            out.append(f"flush set {_t(_q(name))}")
        out.extend(_elements(table, name, elems))
    for name, rules in chains:
        if old.chains.get(name) == rules:
            continue
        if name in old.chains:
            out.append(f"flush chain {_t(_q(name))}")
        out.extend(f"add rule {_t(_q(name))} {r}" for r in rules)
    # Removals: flush every removed chain first (drops its jumps and set references),
    # then delete chains, then sets and counters nothing refers to any more.
    gone_chains = sorted(n for n in old_chains if n not in new.chains)
    out.extend(f"flush chain {_t(_q(n))}" for n in gone_chains)
    out.extend(f"delete chain {_t(_q(n))}" for n in gone_chains)
    for name in sorted(n for n in old_sets if n not in new.sets):
        kind = "map" if ": verdict" in old.sets[name][0] else "set"
        out.append(f"delete {kind} {_t(_q(name))}")
    for c in sorted(old_counters - new_counters):
        out.append(f"delete counter {_t(_q(c))}")
    return "\n".join(out) + ("\n" if out else "")
