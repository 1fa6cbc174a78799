"""A tiny model of what `nft -f` does with the service renderer's scripts, and a packet
tracer over the resulting rules. Test-only.

`NftModel.apply(script)` executes the commands the renderer emits, with the kernel's
refusals that matter for ordering (deleting a missing element, a non-empty chain, a chain a
map still jumps to, a set a rule still uses; adding a map key with another value), so a
partial sync that would fail in the kernel fails here too. `trace()` walks a packet through
the rules by interpreting their text: behaviour tests read like "a client reaches these
endpoints" and survive layout changes that keep the behaviour.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Callable

from podnet.dataplane.nft.services import T


class NftSimError(Exception):
    pass


@dataclass
class NftModel:
    exists: bool = False
    chains: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, dict[str, str]] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=dict)

    def apply(self, script: str) -> None:
        for line in script.splitlines():
            if line.strip():
                self._cmd(line.strip())

    def _cmd(self, line: str) -> None:
        m = re.fullmatch(rf"(add|delete|flush) table {T}", line)
        if m:
            if m[1] == "add":
                self.exists = True
            elif m[1] == "delete":
                self.exists, self.chains, self.sets = False, {}, {}
            else:
                self.chains = {c: [] for c in self.chains}
            return
        if not self.exists:
            raise NftSimError(f"no table: {line}")
        m = re.fullmatch(rf"(add|delete) element {T} (\S+) \{{ (.*) \}}", line)
        if m:
            return self._elements(m[1], m[2], m[3])
        m = re.fullmatch(rf"add rule {T} (\S+) (.*)", line)
        if m:
            self._need_chain(m[1]).append(m[2])
            for s in re.findall(r"@(\S+)", m[2]):
                if s not in self.sets:
                    raise NftSimError(f"rule uses missing set {s}: {line}")
            return
        m = re.fullmatch(rf"(add|flush|delete) chain {T} (\S+)( \{{.*\}})?", line)
        if m:
            return self._chain(m[1], m[2])
        m = re.fullmatch(rf"add (set|map) {T} (\S+) \{{ (.*) \}}", line)
        if m:
            self.sets.setdefault(m[2], {})
            t = re.search(r"timeout (\d+)s", m[3])
            if t:
                self.timeouts[m[2]] = int(t[1])
            return
        m = re.fullmatch(rf"(flush|delete) (set|map) {T} (\S+)", line)
        if m:
            if m[3] not in self.sets:
                raise NftSimError(f"no such set: {line}")
            if m[1] == "flush":
                self.sets[m[3]] = {}
            else:
                if any(f"@{m[3]} " in r or r.endswith(f"@{m[3]}") for rs in self.chains.values() for r in rs):
                    raise NftSimError(f"set in use: {line}")
                del self.sets[m[3]]
            return
        raise NftSimError(f"unknown command: {line}")

    def _need_chain(self, c: str) -> list[str]:
        if c not in self.chains:
            raise NftSimError(f"no such chain {c}")
        return self.chains[c]

    def _chain(self, verb: str, c: str) -> None:
        if verb == "add":
            self.chains.setdefault(c, [])
        elif verb == "flush":
            self._need_chain(c).clear()
        else:
            if self._need_chain(c):
                raise NftSimError(f"delete chain {c}: not empty")
            for s, els in self.sets.items():
                if any(v.endswith(f" {c}") for v in els.values()):
                    raise NftSimError(f"delete chain {c}: map {s} still jumps to it")
            del self.chains[c]

    def _elements(self, verb: str, s: str, body: str) -> None:
        if s not in self.sets:
            raise NftSimError(f"no such set {s}")
        for item in body.split(", "):
            key, _, val = item.partition(" : ")
            if verb == "delete":
                if key not in self.sets[s]:
                    raise NftSimError(f"delete element {s} {{ {key} }}: no such element")
                del self.sets[s][key]
                continue
            if key in self.sets[s] and self.sets[s][key] != val:
                raise NftSimError(f"add element {s} {{ {item} }}: exists with another value")
            if val.startswith(("jump ", "goto ")) and val.split()[1] not in self.chains:
                raise NftSimError(f"element {item} jumps to missing chain")
            self.sets[s][key] = val


# ---- the tracer --------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    action: str  # "dnat" | "reject" | "drop" | "none" (not a service: untouched)
    ip: str = ""
    port: int = 0
    masquerade: bool = False


def trace(model: NftModel, src: str, dst: str, proto: str, dport: int,
          draw: Callable[[int], int] = lambda n: 0,
          affinity: dict[str, set[str]] | None = None) -> Verdict:
    """The fate of the first packet of a connection src -> dst:dport. `draw(n)` plays
    numgen; `affinity` holds the dynamic sets' contents and is updated as the kernel would."""
    fam = ipaddress.ip_address(dst).version
    proto = proto.lower()
    aff = affinity if affinity is not None else {}
    s = model.sets
    node = dst in s.get(f"nodeips{fam}", {})
    key = f"{dst} . {proto} . {dport}"
    if key in s[f"noep{fam}"] or (node and f"{proto} . {dport}" in s[f"npnoep{fam}"]):
        return Verdict("reject")
    target = s[f"svc{fam}"].get(key) or (s[f"np{fam}"].get(f"{proto} . {dport}") if node else None)
    if target is None:
        return Verdict("reject" if dst in s[f"vips{fam}"] else "none")
    if target == "drop":
        return Verdict("drop")
    ct: dict[str, bool] = {}
    mark = _run_chain(model, target.split()[1], src, draw, aff, ct)
    val = s[f"ep{fam}"][mark]
    ip, port = val.split(" . ")
    hairpin = f"{src} . {ip}" in s[f"hairpin{fam}"] and src == ip
    return Verdict("dnat", ip, int(port), masquerade=hairpin or (node and not ct.get("no_masq")))


def _run_chain(model: NftModel, chain: str, src: str, draw: Callable[[int], int],
               aff: dict[str, set[str]], ct: dict[str, bool]) -> str:
    mark = ""
    for rule in model.chains[chain]:
        if re.fullmatch(r"ct mark set ct mark \| 0x00100000", rule):  # NodePort: no masquerade
            ct["no_masq"] = True
            continue
        m = re.fullmatch(r"ip6? saddr @(\S+) meta mark set (\S+) update @\S+ \{ ip6? saddr \} return", rule)
        if m:
            if src in aff.get(m[1], set()):
                return m[2]
            continue
        m = re.fullmatch(r"meta mark set numgen random mod (\d+) offset (\S+)", rule)
        if m:
            mark = f"{int(m[2], 16) + draw(int(m[1])):#010x}"
            continue
        m = re.fullmatch(r"meta mark (\S+) update @(\S+) \{ ip6? saddr \} return", rule)
        if m:
            if m[1] == mark:
                aff.setdefault(m[2], set()).add(src)
                return mark
            continue
        raise AssertionError(f"tracer does not know rule {rule!r} in chain {chain}")
    return mark


def canonical(model: NftModel) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Chains and sets with every mark written as `<chain>#<bucket>`: slots are handed out
    in history order, so two tables with the same behaviour may number them differently."""
    slot_chain: dict[int, str] = {}
    for c, rules in model.chains.items():
        for r in rules:
            m = re.search(r"numgen random mod \d+ offset (0x[0-9a-f]+)", r)
            if m:
                slot = (int(m[1], 16) >> 12) & 0xFFFF  # a -local chain shares its slot
                slot_chain[slot] = min(c, slot_chain.get(slot, c))

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            v = int(m[0], 16)
            if v & 0xF0000000 != 0x50000000 or not (v >> 12) & 0xFFFF:
                return m[0]
            return f"{slot_chain.get((v >> 12) & 0xFFFF, '?')}#{v & 0xFFF}"
        return re.sub(r"0x[0-9a-f]{8}", one, text)
    chains = {c: [sub(r) for r in rules] for c, rules in model.chains.items()}
    sets = {s: {sub(k): sub(v) for k, v in els.items()} for s, els in model.sets.items()}
    return chains, sets
