"""Read `nft monitor trace` output: which chains and rules one packet met in one netns,
and what the packet looked like there. Pure (text in, values out).

A line is `trace id <id> <family> <table> <chain> <packet: ...|rule ... (verdict v)|
verdict v|policy v>`; one id is one packet in one namespace (the trace flag does not
survive a namespace crossing, so every namespace along the path marks it again).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

LINE = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (packet:|rule|verdict|policy) ?(.*)$")
POLICY_TABLE = "podnet-pol"
NAT_TABLES = ("podnet-nat", "podnet-svc")
MARK_TABLE_PREFIX = "pntrace"
MARK_CHAIN = "pre"
SHORT = {"eg": "egress", "in": "ingress"}


@dataclass(frozen=True)
class Event:
    table: str
    chain: str
    kind: str  # packet | rule | verdict | policy
    text: str


@dataclass
class PacketTrace:
    id: str
    events: list[Event] = field(default_factory=list)

    def packets(self) -> list[dict[str, str]]:
        return [fields(e.text) for e in self.events if e.kind == "packet"]

    @property
    def first(self) -> dict[str, str]:
        p = self.packets()
        return p[0] if p else {}

    @property
    def last(self) -> dict[str, str]:
        p = self.packets()
        return p[-1] if p else {}

    @property
    def oif(self) -> str | None:
        return next((p["oif"] for p in reversed(self.packets()) if "oif" in p), None)

    @property
    def dropped(self) -> bool:
        return any("(verdict drop)" in e.text or (e.kind in ("policy", "verdict") and e.text.startswith("drop"))
                   for e in self.events)

    @property
    def masquerade(self) -> str | None:
        """The table whose masquerade rule took the packet, if any."""
        return next((e.table for e in self.events if e.kind == "rule" and e.table in NAT_TABLES
                     and "masquerade" in e.text and "(verdict accept)" in e.text), None)

    def policy(self, direction: str) -> tuple[str, str]:
        """('allowed', rule) | ('denied', pod chain) | ('established', '') | ('open', '')
        | ('unseen', '') for `egress` or `ingress`, as the podnet-pol chains decided."""
        base_seen = False
        for e in self.events:
            if e.table != POLICY_TABLE:
                continue
            if e.chain == direction:
                base_seen = True
                if "established" in e.text and "(verdict accept)" in e.text:
                    return ("established", "")
            kind, _, short = e.chain.rpartition("/")
            if SHORT.get(short) != direction:
                continue
            if kind.startswith(("pol/", "cnp/")) and "(verdict accept)" in e.text:
                m = re.search(r'counter name "([^"]+)"', e.text)
                name = m.group(1) if m else e.chain
                return ("allowed", name[len("rule/"):] if name.startswith("rule/") else name)
            if kind.startswith(("pod/", "rest/", "cnp/")) and ("(verdict drop)" in e.text or e.text.startswith("drop")):
                return ("denied", e.chain)
        return ("open", "") if base_seen else ("unseen", "")


_FIELD = re.compile(r'\b(iif|oif) "([^"]+)"|\bether (saddr|daddr) (\S+)|\b(ip6?) (saddr|daddr|ttl|hoplimit) (\S+)'
                    r'|\b(tcp|udp|sctp) (sport|dport) (\d+)')


def fields(text: str) -> dict[str, str]:
    """`iif`, `oif`, `ether saddr`, `ether daddr`, `saddr`, `daddr`, `ttl`, `proto`, `sport`, `dport`."""
    out: dict[str, str] = {}
    for m in _FIELD.finditer(text):
        if m.group(1):
            out[m.group(1)] = m.group(2)
        elif m.group(3):
            out[f"ether {m.group(3)}"] = m.group(4)
        elif m.group(5):
            key = "ttl" if m.group(6) in ("ttl", "hoplimit") else m.group(6)
            out.setdefault(key, m.group(7))
        elif m.group(8):
            out["proto"] = m.group(8).upper()
            out.setdefault(m.group(9), m.group(10))
    return out


def parse(text: str) -> list[PacketTrace]:
    """Packet traces in the order their ids first appear."""
    out: list[PacketTrace] = []
    by_id: dict[str, PacketTrace] = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        tid, _fam, table, chain, kind, rest = m.groups()
        # ids are a hash of the skb's address and come back for later packets: our own
        # marking chain runs first for every packet, so its `packet:` line starts a new one
        if tid not in by_id or (kind == "packet:" and table.startswith(MARK_TABLE_PREFIX)
                                and chain == MARK_CHAIN):
            by_id[tid] = PacketTrace(tid)
            out.append(by_id[tid])
        by_id[tid].events.append(Event(table, chain, kind.rstrip(":"), rest.strip()))
    return out
