"""From query bytes to response bytes: the request handler, with its answer cache. No sockets.

Four paths, cheapest first:
- fast (`fast`): a plain UDP query (no EDNS) whose lower-cased question is in the cache
  gets its pre-built answer with the client's ID and question case patched in; no parsing.
- quick (`quick`, quick.py): the common cluster-zone answers (NXDOMAIN and NODATA from
  a template per name length, one-address A/AAAA) without parsing either.
- slow (`handle`): parse, answer from the zone, pack a template, cache it.
- upstream: names outside the zone (and CNAME chains that leave it) come back as a
  `Pending`, which the server runs on a worker thread because it blocks on the network.

The zone and the caches built from it live in one `_Snap`; a new zone swaps in a new
snapshot, so a template built from the old zone can never land in the new cache. The
cache (cache.py) is bounded by memory and evicts a generation at a time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from podnet.dns import wire
from podnet.dns.cache import AnswerCache
from podnet.dns.forward import Forwarder
from podnet.dns.lookup import Answer, NOERROR, SERVFAIL, resolve
from podnet.dns.pack import zone_template
from podnet.dns.quick import QuickAnswers
from podnet.dns.records import A, AAAA, REVERSE_V4, REVERSE_V6, Zone
from podnet.dns.wire import BadQuery, Drop, Query

log = logging.getLogger(__name__)

_QD1 = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # qdcount 1, nothing else
_QD1_AR1 = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # qdcount 1, one additional (the OPT)
_ZONE_TRANSFER = (251, 252)                  # IXFR, AXFR
_FORMERR_TYPES = (0, wire.OPT_TYPE)


class _Rotating:
    """Several orderings of one answer, handed out in turn: CoreDNS's `loadbalance`, so
    clients that take the first address of a headless Service spread over its endpoints.
    Indexed like a plain entry (`entry[rd]`), so the fast path needs no special case."""
    __slots__ = ("variants", "i")

    def __init__(self, variants: list[tuple[bytes, bytes]]):
        self.variants, self.i = variants, 0

    def __getitem__(self, rd: int) -> bytes:
        self.i = (self.i + 1) % len(self.variants)
        return self.variants[self.i][rd]


MAX_ROTATIONS = 16


@dataclass
class _Snap:
    """One zone and everything built from it; replaced whole when the zone changes."""
    zone: Zone | None
    cache: AnswerCache = field(default_factory=AnswerCache)
    quick: QuickAnswers | None = None


class Pending:
    """An answer that needs the upstream servers; `run()` blocks, never raises."""

    def __init__(self, responder: "Responder", query: Query, partial: Answer | None, tcp: bool):
        self.responder, self.query, self.partial, self.tcp = responder, query, partial, tcp

    def run(self) -> bytes:
        q = self.query
        try:
            return self._run()
        except Exception:  # noqa: BLE001 - a daemon answers SERVFAIL rather than dying
            log.exception("forwarding %r failed", q.name)
            return wire.error_response(SERVFAIL, q.qid, q.flags, q.question, q.edns)

    def _run(self) -> bytes:
        q, fwd = self.query, self.responder.forwarder
        assert fwd is not None
        if self.partial is None:
            rec = fwd.query(q.labels, q.qtype, q.qclass)
            if rec is None:
                return wire.error_response(SERVFAIL, q.qid, q.flags, q.question, q.edns)
            tmpl = wire.template(q, rec.header.rcode, rec.rr, rec.auth, rec.ar, authoritative=False)
            return wire.finalize(q, tmpl, self.tcp)
        chain = [wire.to_dnslib(rr) for rr in self.partial.answer]
        target = tuple(lb.encode("latin-1") for lb in self.partial.chase.split("."))
        rec = fwd.query(target, q.qtype, q.qclass)
        rcode, more, auth = NOERROR, [], []
        if rec is not None:
            rcode, more, auth = rec.header.rcode, rec.rr, rec.auth
        return wire.finalize(q, wire.template(q, rcode, chain + more, auth), self.tcp)


class Responder:
    def __init__(self, origin: str = "cluster.local", forwarder: Forwarder | None = None,
                 cache_bytes: int = 128 << 20):
        self.origin = origin.strip(".").lower()
        self.forwarder = forwarder if forwarder is not None and forwarder.upstreams else None
        self.cache_bytes = cache_bytes
        self._snap = _Snap(None, AnswerCache(cache_bytes))
        # the current generation's dicts, read by the server's inlined fast path
        self.cached_udp: dict[bytes, tuple[bytes, bytes] | _Rotating] = self._snap.cache.cur.udp
        self.cached_edns: dict[bytes, tuple[bytes, bytes] | _Rotating] = self._snap.cache.cur.edns
        self.quick_answer: Callable[[bytes, bytes, bytes, bool], bytes | None] = _no_quick
        self._turn = 0

    @property
    def zone(self) -> Zone | None:
        return self._snap.zone

    @property
    def cache(self) -> AnswerCache:
        return self._snap.cache

    def set_zone(self, zone: Zone) -> None:
        """Swap in a new zone. Cached positive answers whose RRsets are the very same
        objects in the new zone (ZoneBuilder shares unchanged Services' records) stay;
        negative answers go, as they carry the SOA serial."""
        old = self._snap
        cache = AnswerCache(self.cache_bytes)
        snap = _Snap(zone, cache, QuickAnswers.for_zone(zone))
        if old.zone is not None and old.zone.origin == zone.origin and old.zone.ttl == zone.ttl:
            for gen in old.cache.generations():
                for key, dep in list(gen.deps.items()):
                    name, sets, extra = dep
                    if zone.rrsets.get(name) is sets and zone.additional.get(name) is extra:
                        snap.cache.put(key, gen.udp.get(key), gen.edns.get(key), gen.templates.get(key), dep)
        self._snap = snap
        self._follow(snap.cache)
        self.quick_answer = self._quick_for(snap)

    def _quick_for(self, snap: _Snap) -> Callable[[bytes, bytes, bytes, bool], bytes | None]:
        """The quick path for this snapshot. Its answers to lower-case questions (what
        resolvers send) are also kept in the cache, so the next asker gets a fast-path hit,
        until the cache first rotates in this zone: then the zone's working set is larger
        than half the budget, every answer would push out another one unused (a mix of
        466,664 questions at 100k names), and the quick path alone is cheaper."""
        q = snap.quick
        if q is None:
            return _no_quick
        answer, cache, follow = q.answer, snap.cache, self._follow

        def quick_answer(data: bytes, qs: bytes, key: bytes, opt: bool) -> bytes | None:
            out = answer(data, qs, key, opt)
            if out is not None and not cache.rotations and key == qs:
                cache.keep(key, out, opt)
                if cache.rotations:
                    follow(cache)
            return out
        return quick_answer

    def _follow(self, cache: AnswerCache) -> None:
        """Point the server's inlined fast path at the cache's current generation."""
        self.cached_udp, self.cached_edns = cache.cur.udp, cache.cur.edns

    # ---- the fast path ------------------------------------------------------------------
    def _hit(self, key: bytes, table: str) -> Any:
        """The cached answer for `key` from the current generation, or moved over from the
        old one."""
        cache = self._snap.cache
        entry = getattr(cache.cur, table).get(key)
        if entry is None and cache.promote(key):
            self._follow(cache)
            entry = getattr(cache.cur, table).get(key)
        return entry

    def fast(self, data: bytes) -> bytes | None:
        """A cached answer for a plain UDP query, or None (then call `quick`, then `handle`).
        The server inlines the current generation's part of this in its UDP loop."""
        if not data.startswith(_QD1, 4) or data[2] > 1:
            return None
        qs = data[12:]
        key = qs.lower()
        entry = self._hit(key, "udp")
        if entry is None:
            return None
        t = entry[data[2]]
        if key == qs:  # the client asked in lower case: the template's question is its own
            return data[:2] + t
        return data[:2] + t[:10] + qs + t[10 + len(qs):]

    def fast_edns(self, data: bytes) -> bytes | None:
        """The same for a UDP query whose only extra record is a plain EDNS0 OPT."""
        if not data.startswith(_QD1_AR1, 4) or data[2] > 1:
            return None
        end = -11 if wire.bare_opt_tail(data) else wire.edns_question_end(data)
        if end is None:
            return None
        qs = data[12:end]
        key = qs.lower()
        entry = self._hit(key, "edns")
        if entry is None:
            return None
        t = entry[data[2]]
        if key == qs:
            return data[:2] + t
        return data[:2] + t[:10] + qs + t[10 + len(qs):]

    def udp(self, data: bytes) -> bytes | Pending | None:
        """Everything for a UDP query the server's inlined fast path did not answer: the
        quick path (negative answers are never cached: it is as cheap), the old cache
        generation, then the slow path. Never raises (as `handle`)."""
        try:
            out = self.udp_strict(data)
        except Exception:  # noqa: BLE001 - the slow path then answers (or says SERVFAIL)
            log.exception("the quick path failed")
            out = None
        return self.handle(data) if out is None else out

    def udp_strict(self, data: bytes) -> bytes | None:
        """`udp` without the slow path and the safety net: what the fuzz test drives."""
        if data.startswith(_QD1, 4) and data[2] < 2:
            qs = data[12:]
            return self.quick(data, qs, qs.lower(), False) or self.fast(data)
        if data.startswith(_QD1_AR1, 4) and data[2] < 2 and \
                (end := -11 if wire.bare_opt_tail(data) else wire.edns_question_end(data)):
            qs = data[12:end]
            key = qs.lower()
            entry = self._snap.cache.cur.edns.get(key)
            if entry is not None:
                t = entry[data[2]]
                return data[:2] + t if key == qs else data[:2] + t[:10] + qs + t[10 + len(qs):]
            return self.quick(data, qs, key, True) or self.fast_edns(data)
        return None

    # ---- the quick path -----------------------------------------------------------------
    def quick(self, data: bytes, qs: bytes, key: bytes, opt: bool) -> bytes | None:
        """`QuickAnswers.answer` for the current zone (`qs` the question as sent, `key`
        lower-cased, `opt`: a bare EDNS0 OPT follows): common cluster-zone answers
        without parsing, or None (the slow path answers). The server calls
        `quick_answer` directly."""
        return self.quick_answer(data, qs, key, opt)

    # ---- the slow path ------------------------------------------------------------------
    def handle(self, data: bytes, tcp: bool = False) -> bytes | Pending | None:
        """Never raises: an internal error becomes SERVFAIL (and a log line)."""
        try:
            return self.handle_strict(data, tcp)
        except Exception:  # noqa: BLE001
            log.exception("answering a query failed")
            if len(data) >= 12:
                return wire.error_response(SERVFAIL, int.from_bytes(data[:2], "big"),
                                           int.from_bytes(data[2:4], "big"))
            return None

    def handle_strict(self, data: bytes, tcp: bool = False) -> bytes | Pending | None:
        """`handle` without the safety net: what the fuzz test drives."""
        try:
            q = wire.parse_query(data)
        except Drop:
            return None
        except BadQuery as e:
            return wire.error_response(e.rcode, e.qid, e.flags, e.question, e.edns)
        early = self._refuse(q)
        if early is not None:
            return wire.error_response(early, q.qid, q.flags, q.question, q.edns)
        snap = self._snap
        cached = self._hit(q.key, "templates")
        if cached is not None:
            self._turn += 1
            return wire.finalize(q, cached[self._turn % len(cached)], tcp)
        if snap.zone is None:  # not synced yet: no negative answer we could stand behind
            if self.forwarder is not None and not self._ours(q.name):
                return Pending(self, q, None, tcp)
            return wire.error_response(SERVFAIL, q.qid, q.flags, q.question, q.edns)
        ans = resolve(snap.zone, q.name, q.qtype)
        if ans.forward:
            if self.forwarder is None:
                return wire.error_response(wire.REFUSED, q.qid, q.flags, q.question, q.edns)
            return Pending(self, q, None, tcp)
        if ans.chase and self.forwarder is not None:
            return Pending(self, q, ans, tcp)
        labels = tuple(lb.lower() for lb in q.labels)
        tmpls = tuple(zone_template(labels, q.qtype, q.qclass, ans.rcode, answer, ans.authority, ans.additional)
                      for answer in _orderings(ans, q.qtype))
        self._store(snap, q, tmpls, ans)
        return wire.finalize(q, tmpls[0], tcp)

    def _ours(self, name: str) -> bool:
        """In the cluster zone or a reverse zone: answered by us once synced."""
        return any(name == z or name.endswith("." + z) for z in (self.origin, REVERSE_V4, REVERSE_V6))

    @staticmethod
    def _refuse(q: Query) -> int | None:
        if q.qtype in _FORMERR_TYPES:
            return wire.FORMERR
        if q.qclass != wire.CLASS_IN:
            return wire.REFUSED
        if q.qtype in _ZONE_TRANSFER:
            return wire.REFUSED
        if 128 <= q.qtype <= 254:  # other meta types (MAILA, MAILB, TKEY, TSIG, ...)
            return wire.NOTIMP
        return None

    def _store(self, snap: _Snap, q: Query, tmpls: tuple[bytes, ...], ans: Answer) -> None:
        qlen = len(q.question)
        # The template's question is the lower-cased one: key == question there.
        variants = [(wire.udp_variant(t, qlen)[2:], wire.udp_variant(wire.set_rd(t), qlen)[2:]) for t in tmpls]
        udp = variants[0] if len(variants) == 1 else _Rotating(variants)
        edns = None
        opt = [wire.with_opt(t) for t in tmpls]
        if all(len(t) <= wire.PLAIN_UDP_SIZE for t in opt):
            ev = [(t[2:], wire.set_rd(t)[2:]) for t in opt]
            edns = ev[0] if len(ev) == 1 else _Rotating(ev)
        name = q.name
        assert snap.zone is not None
        sets = snap.zone.rrsets.get(name)
        dep = None
        if ans.rcode == NOERROR and ans.answer and sets is not None and \
                all(rr.name == name for rr in ans.answer):
            dep = (name, sets, snap.zone.additional.get(name))
        snap.cache.put(q.key, udp, edns, tmpls, dep)
        self._follow(snap.cache)


def _no_quick(data: bytes, qs: bytes, key: bytes, opt: bool) -> None:
    return None


def _orderings(ans: Answer, qtype: int) -> list[tuple]:
    """The answer as is, or, for several addresses of one name, up to MAX_ROTATIONS
    rotations of them spread evenly (each endpoint comes first equally often when N <= 16)."""
    rrs = ans.answer
    n = len(rrs)
    if qtype not in (A, AAAA) or n < 2 or any(rr.rtype != qtype for rr in rrs):
        return [rrs]
    k = min(n, MAX_ROTATIONS)
    return [rrs[i * n // k:] + rrs[: i * n // k] for i in range(k)]
