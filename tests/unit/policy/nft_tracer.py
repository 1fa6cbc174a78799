"""A small tracer over the rendered policy model (dataplane/nft/policy.NftModel): runs a new
connection through the base chains, maps, pod and policy chains as nftables would, so the
renderer's semantics are tested without root. Knows exactly the rule forms the renderer
writes, and fails loudly on any other."""
from __future__ import annotations

import ipaddress
import re

from podnet.dataplane.nft.policy import BASE_CHAINS, NftModel


def _addr_in(elem: str, a) -> bool:
    if "-" in elem:
        lo, hi = elem.split("-")
        return ipaddress.ip_address(lo) <= a <= ipaddress.ip_address(hi) if ipaddress.ip_address(lo).version == a.version else False
    net = ipaddress.ip_network(elem, strict=False)
    return net.version == a.version and a in net


PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}


def _port_in(elem: str, port: int) -> bool:
    lo, _, hi = elem.partition("-")
    return int(lo) <= port <= int(hi or lo)


class Tracer:
    def __init__(self, m: NftModel):
        self.m = m

    def _in_set(self, name: str, key: list) -> bool:
        decl, elems = self.m.sets[name]
        for e in elems:
            parts = [p.strip() for p in e.split(" . ")]
            if len(parts) != len(key):
                continue
            ok = True
            for part, k in zip(parts, key):
                if isinstance(k, int):
                    ok = _port_in(part, k)
                elif isinstance(k, str):  # protocol: its name, or a range of protocol numbers
                    ok = part == k or (part[:1].isdigit() and _port_in(part, PROTO_NUMBERS[k]))
                else:
                    ok = _addr_in(part.strip('"'), k)
                if not ok:
                    break
            if ok:
                return True
        return False

    def _field(self, tok: str, pkt: dict):
        return {"saddr": pkt["src"], "daddr": pkt["dst"], "l4proto": pkt["proto"], "dport": pkt["port"]}[tok]

    def _match(self, rule: str, pkt: dict) -> str | None:
        """The verdict of one rule (accept/drop/jump X/vmap) or None when it does not match."""
        fam = pkt["src"].version
        rule = re.sub(r' log group \d+ prefix "[^"]*"', "", rule)  # nflog for flows: no verdict
        m = re.fullmatch(r"(.*?)\s*(counter name \S+ (?:accept|drop|goto \S+|ip6? [sd]addr vmap @\S+)|counter drop"
                         r"|jump \S+|goto \S+|accept)", rule)
        if rule.startswith(("iifname", "ct state")):
            return None  # a new connection from a known address: no spoofing, not established
        if m is None and " != @" in rule:
            return self._skip(rule, pkt)
        if m is None:
            return self._vmap(rule, pkt)
        conds, verdict = m.group(1), m.group(2)
        cond_re = r"(ip6?|meta) ((?:saddr|daddr|l4proto)(?: \. [a-z0-9 .]+?)?) @(\S+)"
        assert re.sub(cond_re, "", conds).strip() == "", f"unknown match in: {rule}"
        for cm in re.finditer(r"(ip6?|meta) ((?:saddr|daddr|l4proto)(?: \. [a-z0-9 .]+?)?) @(\S+)", conds):
            kw, fields, sname = cm.groups()
            if kw != "meta" and (kw == "ip6") != (fam == 6):
                return None
            toks = [t for t in re.split(r"\s*\.\s*", fields) if t not in ("ip", "ip6", "meta", "th")]
            toks = [t.split()[-1] for t in toks]
            key = [self._field(t, pkt) for t in toks]
            key = [k.lower() if isinstance(k, str) else k for k in key]
            if not self._in_set(sname, key):
                return None
        if " vmap @" in verdict:  # a ClusterNetworkPolicy Pass: goto the pod's chain after Admin
            return self._vmap(verdict.split(" ", 3)[3], pkt) or "return"
        if " goto " in verdict:
            return "goto " + verdict.rsplit(" ", 1)[1]
        return ("accept" if verdict.endswith("accept") else "drop" if verdict.endswith("drop")
                else verdict.replace("counter ", ""))

    def _skip(self, rule: str, pkt: dict) -> str | None:
        """A tier chain's filter: `return` when the key is NOT in the set."""
        sm = re.fullmatch(r"(meta l4proto \{ tcp, udp, sctp \} )?(ip6?|meta) ((?:saddr|daddr|l4proto)(?: \. [a-z0-9 .]+?)?)"
                          r" != @(\S+) return", rule)
        assert sm, f"unknown rule form: {rule}"
        only_l4, kw, fields, sname = sm.groups()
        if only_l4 and pkt["proto"].lower() not in PROTO_NUMBERS:
            return None
        if kw != "meta" and (kw == "ip6") != (pkt["src"].version == 6):
            return None
        toks = [t.split()[-1] for t in re.split(r"\s*\.\s*", fields) if t not in ("ip", "ip6", "meta", "th")]
        key = [self._field(t, pkt) for t in toks]
        key = [k.lower() if isinstance(k, str) else k for k in key]
        return None if self._in_set(sname, key) else "return"

    def _vmap(self, rule: str, pkt: dict) -> str | None:
        vm = re.fullmatch(r"(ip6?) (saddr|daddr) vmap @(\S+)", rule)
        assert vm, f"unknown rule form: {rule}"
        if (vm.group(1) == "ip6") != (pkt["src"].version == 6):
            return None
        key = str(self._field(vm.group(2), pkt))
        for e in self.m.sets[vm.group(3)][1]:
            k, _, verdict = e.partition(" : ")
            if k == key:
                return verdict
        return None

    def _chain(self, rules, pkt) -> str:
        for r in rules:
            v = self._match(r, pkt)
            if v is None:
                continue
            if v.startswith("jump "):
                sub = self._chain(self.m.chains[v[5:]], pkt)
                if sub in ("accept", "drop"):
                    return sub
                continue
            if v.startswith("goto "):  # replaces this chain: its end returns from this one too
                return self._chain(self.m.chains[v[5:]], pkt)
            return v
        return "return"

    def allowed(self, src: str, dst: str, proto: str, port: int) -> bool:
        pkt = {"src": ipaddress.ip_address(src), "dst": ipaddress.ip_address(dst), "proto": proto, "port": port}
        # pod to pod: the forward hook's chains (the input chain sees only what is addressed
        # to the node itself: host protection, traced in test_policy_host.py)
        for name in ("egress", "ingress"):
            if self._chain(BASE_CHAINS[name][1], pkt) == "drop":
                return False
        return True
