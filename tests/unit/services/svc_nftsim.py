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
            for other, rules in self.chains.items():
                if any(re.search(rf"(jump|goto) {re.escape(c)}( |$)", r) for r in rules):
                    raise NftSimError(f"delete chain {c}: chain {other} still jumps to it")
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


# ---- the tracer ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    action: str  # "dnat" | "reject" | "drop" | "none" (not a service: untouched)
    ip: str = ""
    port: int = 0
    masquerade: bool = False


@dataclass
class _Pkt:
    family: int
    src: str
    dst: str
    proto: str
    dport: int
    local_src: bool  # `fib saddr type local`: the node itself sent it
    mark: int = 0
    ct_mark: int = 0
    orig_dst: str = ""
    dnat: tuple[str, int] | None = None
    masquerade: bool = False


# The hooks a new connection's first packet passes, in priority order, as the kernel runs them.
PATHS = {"prerouting": ("filter-prerouting", "nat-prerouting", "mark-clear-prerouting", "nat-postrouting"),
         "output": ("filter-output", "nat-output", "mark-clear-output", "nat-postrouting")}
_IP = r"ip6?"
_HEX = r"(0x[0-9a-f]+)"


def trace(model: NftModel, src: str, dst: str, proto: str, dport: int,
          draw: Callable[[int], int] = lambda n: 0,
          affinity: dict[str, set[str]] | None = None, hook: str = "") -> Verdict:
    """The fate of the first packet of a connection src -> dst:dport, by interpreting the
    rendered rules hook by hook. `draw(n)` plays numgen; `affinity` holds the dynamic sets'
    contents and is updated as the kernel would. `hook`: "output" for a packet the node
    sends itself (its source is one of the node's addresses), else "prerouting"; by
    default "output" when `src` is in the nodeips sets."""
    fam = ipaddress.ip_address(dst).version
    local = src in model.sets.get(f"nodeips{fam}", {})
    hook = hook or ("output" if local else "prerouting")
    pkt = _Pkt(fam, src, dst, proto.lower(), dport, local_src=hook == "output", orig_dst=dst)
    run = _Run(model, pkt, draw, affinity if affinity is not None else {})
    for chain in PATHS[hook]:
        if chain not in model.chains:
            continue
        out = run.chain(chain)
        if out in ("drop", "reject"):
            return Verdict(out)
    if pkt.dnat is None:
        return Verdict("none")
    return Verdict("dnat", pkt.dnat[0], pkt.dnat[1], pkt.masquerade)


def _in_set(elements: dict[str, str], key: str) -> bool:
    if key in elements:
        return True
    if "/" not in "".join(elements):
        return False
    try:
        a = ipaddress.ip_address(key)
    except ValueError:
        return False
    return any("/" in e and a in ipaddress.ip_network(e, strict=False) for e in elements
               if ipaddress.ip_network(e, strict=False).version == a.version)


class _Run:
    """Runs chains for one packet. A rule is read left to right: each expression either
    matches (go on), fails (the rule does not apply), or ends with a verdict."""

    def __init__(self, model: NftModel, pkt: _Pkt, draw: Callable[[int], int], aff: dict[str, set[str]]):
        self.m, self.p, self.draw, self.aff = model, pkt, draw, aff
        self.done = False  # a NAT statement ended this hook
        self.logged: list[str] = []  # nflog prefixes of the rules that ran (issue 18 §1)

    def chain(self, name: str) -> str:
        """"" when the chain ran to its end (or returned), else the verdict."""
        self.done = False
        out = self._chain(name)
        return "" if out in ("return", "accept") else out

    def _chain(self, name: str) -> str:
        for rule in self.m.chains[name]:
            out = self._rule(rule, name)
            if out == "":
                continue
            if out.startswith("jump "):
                sub = self._chain(out.split()[1])
                if sub in ("", "return"):
                    if self.done:
                        return "accept"
                    continue
                return sub
            if out.startswith("goto "):
                sub = self._chain(out.split()[1])
                return "" if sub == "return" else sub
            return out
        return ""

    def _rule(self, rule: str, chain: str) -> str:
        rest = rule
        while rest:
            rest = rest.lstrip()
            for rx, fn in self._exprs():
                m = re.match(rx, rest)
                if m:
                    out = fn(m)
                    rest = rest[m.end():]
                    if out is False:
                        return ""
                    if isinstance(out, str):
                        return out
                    break
            else:
                raise AssertionError(f"tracer does not know {rest!r} in rule {rule!r} of chain {chain}")
        return ""

    # -- expressions: return True (matched, go on), False (no match), or a verdict string
    def _exprs(self) -> list[tuple[str, Callable[[re.Match[str]], bool | str]]]:
        p, sets = self.p, self.m.sets
        fam_ok = lambda kw: (kw == "ip") == (p.family == 4)  # noqa: E731
        key = lambda: f"{p.dst} . {p.proto} . {p.dport}"  # noqa: E731
        return [
            (r"ct state new", lambda m: True),
            (r"ct status dnat", lambda m: p.dnat is not None),
            (rf"({_IP}) daddr \. meta l4proto \. th dport vmap @(\S+)",
             lambda m: fam_ok(m[1]) and sets[m[2]].get(key(), False)),
            (rf"({_IP}) daddr \. meta l4proto \. th dport @(\S+)",
             lambda m: fam_ok(m[1]) and key() in sets[m[2]]),
            (r"meta l4proto \. th dport vmap @(\S+)", lambda m: sets[m[1]].get(f"{p.proto} . {p.dport}", False)),
            (r"meta l4proto \. th dport @(\S+)", lambda m: f"{p.proto} . {p.dport}" in sets[m[1]]),
            (rf"({_IP}) saddr \. {_IP} daddr @(\S+)", lambda m: fam_ok(m[1]) and f"{p.src} . {p.dst}" in sets[m[2]]),
            (rf"({_IP}) daddr @(\S+)", lambda m: fam_ok(m[1]) and _in_set(sets[m[2]], p.dst)),
            (rf"({_IP}) saddr (!= )?@(\S+) meta mark set {_HEX} update @\S+ \{{ {_IP} saddr \}} return",
             self._affinity_hit),
            (rf"({_IP}) saddr (!= )?\{{ ([^}}]*) \}}",
             lambda m: fam_ok(m[1]) and _in_set(dict.fromkeys(m[3].split(", "), ""), p.src) != bool(m[2])),
            (rf"({_IP}) saddr (!= )?([0-9a-fA-F.:]+/\d+)",  # one prefix (a firewall chain's range)
             lambda m: fam_ok(m[1]) and _in_set({m[3]: ""}, p.src) != bool(m[2])),
            (rf"({_IP}) saddr (!= )?@(\S+)",
             lambda m: fam_ok(m[1]) and _in_set(sets[m[3]], p.src) != bool(m[2])),
            (rf"ct original ({_IP}) daddr @(\S+)", lambda m: fam_ok(m[1]) and _in_set(sets[m[2]], p.orig_dst)),
            (r"fib saddr type local", lambda m: p.local_src),
            (r"meta nfproto (ipv4|ipv6)", lambda m: m[1] == f"ipv{p.family}"),
            (r"meta l4proto (tcp|udp|sctp)", lambda m: m[1] == p.proto),
            (rf"meta mark & {_HEX} == {_HEX}", lambda m: p.mark & int(m[1], 16) == int(m[2], 16)),
            (r"meta mark set numgen random mod (\d+) offset " + _HEX, self._numgen),
            (rf"meta mark set {_HEX}", lambda m: self._set_mark(int(m[1], 16))),
            (rf"meta mark {_HEX} update @(\S+) \{{ {_IP} saddr \}} return", self._affinity_learn),
            (rf"ct mark set ct mark \| {_HEX}", lambda m: self._set_ct(p.ct_mark | int(m[1], 16))),
            (rf"ct mark & {_HEX} == 0", lambda m: p.ct_mark & int(m[1], 16) == 0),
            (rf"dnat {_IP} to meta mark map @(\S+)", self._dnat),
            (r"masquerade", self._masquerade),
            (r'log group \d+ prefix "([^"]*)"', lambda m: self.logged.append(m[1]) is None),
            (r"reject( with .*)?$", lambda m: "reject"),
            (r"(jump|goto) (\S+)", lambda m: f"{m[1]} {m[2]}"),
            (r"(return|drop|accept)$", lambda m: m[1]),
        ]

    def _set_mark(self, v: int) -> bool:
        self.p.mark = v
        return True

    def _set_ct(self, v: int) -> bool:
        self.p.ct_mark = v
        return True

    def _numgen(self, m: re.Match[str]) -> bool:
        return self._set_mark(int(m[2], 16) + self.draw(int(m[1])))

    def _affinity_hit(self, m: re.Match[str]) -> bool | str:
        if self.p.src in self.aff.get(m[3], set()):
            self._set_mark(int(m[4], 16))
            return "return"
        return False

    def _affinity_learn(self, m: re.Match[str]) -> bool | str:
        if self.p.mark != int(m[1], 16):
            return False
        self.aff.setdefault(m[2], set()).add(self.p.src)
        return "return"

    def _dnat(self, m: re.Match[str]) -> str:
        ip, port = self.m.sets[m[1]][f"{self.p.mark:#010x}"].split(" . ")
        self.p.dnat = (ip, int(port))
        self.p.dst = ip
        self.done = True
        return "accept"

    def _masquerade(self, m: re.Match[str]) -> str:
        self.p.masquerade = True
        return "accept"


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
