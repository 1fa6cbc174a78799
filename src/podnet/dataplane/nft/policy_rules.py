"""nftables rules for one compiled policy rule (its peer, port and named-port sets), shared by
the NetworkPolicy renderer (policy.py) and the ClusterNetworkPolicy one (cluster_policy.py).
Pure: no I/O.
"""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Callable

from podnet.calc.policy.compile import CompiledRule
from podnet.calc.policy.predicate import INGRESS
from podnet.dataplane.nft.families import ADDR_TYPE, IP_KEYWORD
from podnet.dataplane.nft.model import NftModel

SHORT = {"ingress": "in", "egress": "eg"}


def nft_name(*parts: str) -> str:
    """Readable names (`ns/name/...`) when short enough; kernel names stop at 255 bytes."""
    n = "/".join(parts)
    if len(n) <= 200:
        return n
    return f"{parts[0]}/{parts[1][:40]}/h{hashlib.sha1(n.encode()).hexdigest()[:24]}"


_ADDR: dict[tuple[int, int], str] = {}


def _addr(fam: int, v: int) -> str:
    hit = _ADDR.get((fam, v))
    if hit is None:
        if len(_ADDR) > 1_000_000:
            _ADDR.clear()
        hit = _ADDR[(fam, v)] = str(ipaddress.IPv4Address(v) if fam == 4 else ipaddress.IPv6Address(v))
    return hit


def _interval(fam: int, lo: int, hi: int) -> str:
    if lo == hi:
        return _addr(fam, lo)
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        bits = (32 if fam == 4 else 128) - (size.bit_length() - 1)
        return f"{_addr(fam, lo)}/{bits}"
    return f"{_addr(fam, lo)}-{_addr(fam, hi)}"


def _set(model: NftModel, decl: str, elems: frozenset[str]) -> str:
    """Sets are named by their content: rules with the same peers share one set (at scale
    most selectors repeat), and a set never changes in place, it is replaced."""
    h = hashlib.sha1((decl + "\n".join(sorted(elems))).encode()).hexdigest()[:20]
    name = f"set/{h}"
    model.sets[name] = (decl, elems)
    return name


_ADDR_ELEMS: dict[tuple[int, frozenset[int]], frozenset[str]] = {}


def _peer_set(model: NftModel, fam: int, key: str, ips: frozenset[int]) -> str:
    """The set of pod addresses one rule's selectors pick, named after those selectors
    (not the content): when pods or namespaces are relabelled the set keeps its name and
    the diff adds and deletes elements, leaving every rule that references it alone."""
    decl = f"type {ADDR_TYPE[fam]};"
    elems = _ADDR_ELEMS.get((fam, ips))
    if elems is None:
        if len(_ADDR_ELEMS) > 20_000:
            _ADDR_ELEMS.clear()
        elems = _ADDR_ELEMS[(fam, ips)] = frozenset(_addr(fam, v) for v in ips)
    name = f"sel{fam}/{hashlib.sha1(key.encode()).hexdigest()[:20]}"
    model.sets[name] = (decl, elems)
    return name


_NAMED_ELEMS: dict[tuple[int, tuple[tuple[int, str, int], ...]], frozenset[str]] = {}


def _named_elems(fam: int, named: tuple[tuple[int, str, int], ...]) -> frozenset[str]:
    """Elements of a named-port set, memoised: rules over the same peers share them."""
    hit = _NAMED_ELEMS.get((fam, named))
    if hit is None:
        if len(_NAMED_ELEMS) > 20_000:
            _NAMED_ELEMS.clear()
        hit = _NAMED_ELEMS[(fam, named)] = frozenset(
            f"{_addr(fam, ip)} . {proto.lower()} . {port}" for ip, proto, port in named)
    return hit


def rule_lines(direction: str, r: CompiledRule, model: NftModel, verdict: Callable[[int | None], str],
               named_set: Callable[[int], str]) -> list[str]:
    """The nft rules matching one compiled rule, each ending in `verdict(family)` (family None:
    a rule matching both families); `named_set(family)` names its named-port set."""
    tail = verdict(None)
    peer_dir, own_dir = ("saddr", "daddr") if direction == INGRESS else ("daddr", "saddr")
    out: list[str] = []
    ports = ""
    if not r.any_port and r.ports:
        ports = "meta l4proto . th dport @" + _set(
            model, "type inet_proto . inet_service; flags interval;",
            frozenset(f"{p.protocol.lower()} . {p.lo}-{p.hi}" if p.lo != p.hi
                      else f"{p.protocol.lower()} . {p.lo}" for p in r.ports)) + " "
    if r.any_peer:
        if r.any_port:
            out.append(tail)
        elif ports:
            out.append(ports + tail)
    for fam in (4, 6):
        kw = IP_KEYWORD[fam]
        tail = verdict(fam)
        peer_matches: list[str] = []
        if not r.any_peer and r.peer_ips.get(fam):
            peer_matches.append(f"{kw} {peer_dir} @" + _peer_set(model, fam, r.peer_key, r.peer_ips[fam]) + " ")
        if not r.any_peer and r.peer_blocks.get(fam):
            # Concatenated with the (any) protocol on purpose: nft 1.0 fetches the elements of
            # every single-field interval set in the table before any element edit, which at
            # scale doubled the cost of each partial sync; concatenated ones are left alone.
            peer_matches.append(f"{kw} {peer_dir} . meta l4proto @" + _set(
                model, f"type {ADDR_TYPE[fam]} . inet_proto; flags interval;",
                frozenset(f"{_interval(fam, lo, hi)} . 0-255" for lo, hi in r.peer_blocks[fam])) + " ")
        for pm in peer_matches:
            if r.any_port:
                out.append(pm + tail)
            elif ports:
                out.append(pm + ports + tail)
        if not r.named.get(fam):
            continue
        # named after what fills it (the selected pods' or the peers' selectors and the port
        # names: shared by every rule with the same), else after its rule; edited in place,
        # so pods come and go without touching the rule
        nset = (f"nport{fam}/{hashlib.sha1(r.named_key.encode()).hexdigest()[:20]}" if r.named_key
                else named_set(fam))
        model.sets[nset] = (f"type {ADDR_TYPE[fam]} . inet_proto . inet_service;",
                            _named_elems(fam, r.named[fam]))
        if direction == INGRESS:
            # keyed on the selected pod; the peer check stays
            for pm in (peer_matches if not r.any_peer else [""]):
                out.append(f"{pm}{kw} {own_dir} . meta l4proto . th dport @{nset} {tail}")
        else:
            # keyed on the peer pod: membership already encodes the peer check
            out.append(f"{kw} {peer_dir} . meta l4proto . th dport @{nset} {tail}")
    return out
