"""DNS messages on the wire: a strict query parser, response templates, and the final touch
(ID, the client's own question case, EDNS OPT, truncation). No I/O.

Queries are parsed by hand because a server only needs the header, one question and an
optional OPT, and because every malformed input must map to a defined outcome (drop,
FORMERR, NOTIMP) instead of whatever a general parser raises. Responses are packed once
with dnslib into a *template*: ID 0, RD clear, the question in lower case. `finalize`
turns a template into the answer for one client in a few byte slices; that is what makes
the cached fast path cheap.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

import dnslib

from podnet.dns.records import A, AAAA, CNAME, NS, PTR, RR, SOA, SRV, TXT

OPT_TYPE = 41
CLASS_IN = 1
MAX_NAME = 255
OUR_UDP_SIZE = 1232       # the DNS flag day 2020 size we advertise
MAX_UDP_SIZE = 4096       # cap on what a client may ask us to send over UDP
PLAIN_UDP_SIZE = 512
MAX_TCP_SIZE = 65535      # a TCP message's 2-byte length prefix
FORMERR, SERVFAIL, NOTIMP, REFUSED, BADVERS = 1, 2, 4, 5, 16
_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_RA = 0x0080
_OPT_RR = b"\x00" + struct.pack("!HHIH", OPT_TYPE, OUR_UDP_SIZE, 0, 0)
OPT_RR = _OPT_RR  # the OPT we append to answers


class Drop(Exception):
    """Not worth an answer (too short to echo an ID, or itself a response)."""


class BadQuery(Exception):
    """A query we answer with an error rcode and, when we got that far, its question."""

    def __init__(self, rcode: int, qid: int, flags: int, question: bytes = b"", edns: int | None = None):
        super().__init__(rcode)
        self.rcode, self.qid, self.flags, self.question, self.edns = rcode, qid, flags, question, edns


@dataclass(frozen=True)
class Query:
    qid: int
    flags: int
    labels: tuple[bytes, ...]   # as sent
    qtype: int
    qclass: int
    question: bytes             # name + type + class, exactly as sent
    key: bytes                  # the question lower-cased (see cache_key): the cache key
    edns: int | None = None     # the client's UDP payload size; None: no OPT
    edns_version: int = 0

    @property
    def rd(self) -> bool:
        return bool(self.flags & _RD)

    @property
    def name(self) -> str:
        """Lower-case (ASCII only, as DNS) dotted name, no trailing dot; "" for the root.
        A dot inside a label is escaped, so such a name can never match a zone name."""
        return ".".join(lb.lower().replace(b".", b"\\.").decode("latin-1") for lb in self.labels)


def _read_name(data: bytes, pos: int) -> tuple[tuple[bytes, ...], int]:
    """Uncompressed name at `pos`. Compression in a query's question is legal but unused by
    any real client; refusing it removes pointer loops from the question entirely."""
    labels: list[bytes] = []
    total = 1
    while True:
        if pos >= len(data):
            raise ValueError("name runs past the end")
        n = data[pos]
        if n == 0:
            return tuple(labels), pos + 1
        if n & 0xC0:
            raise ValueError("compressed or extended label")
        total += n + 1
        if total > MAX_NAME or pos + 1 + n > len(data):
            raise ValueError("name too long or truncated")
        labels.append(data[pos + 1: pos + 1 + n])
        pos += 1 + n


def _skip_name(data: bytes, pos: int) -> int:
    """Skip a possibly compressed owner name of an extra RR without following pointers."""
    for _ in range(128):
        if pos >= len(data):
            raise ValueError("name runs past the end")
        n = data[pos]
        if n & 0xC0 == 0xC0:
            return pos + 2
        if n & 0xC0:
            raise ValueError("extended label")
        if n == 0:
            return pos + 1
        pos += 1 + n
    raise ValueError("too many labels")


def _read_opt(data: bytes, pos: int, count: int) -> tuple[int | None, int]:
    """Walk the additional section: (client UDP size or None, EDNS version)."""
    edns: int | None = None
    version = 0
    for _ in range(count):
        start = pos
        pos = _skip_name(data, pos)
        if pos + 10 > len(data):
            raise ValueError("RR header truncated")
        rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
        pos += 10 + rdlen
        if pos > len(data):
            raise ValueError("RDATA truncated")
        if rtype == OPT_TYPE:
            if edns is not None or data[start] != 0:
                raise ValueError("second OPT, or OPT not owned by the root")
            edns, version = rclass, (ttl >> 16) & 0xFF
    return edns, version


def parse_query(data: bytes) -> Query:
    """Raises Drop or BadQuery."""
    if len(data) < 12:
        raise Drop()
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    if flags & _QR:
        raise Drop()
    if (flags >> 11) & 0xF:
        raise BadQuery(NOTIMP, qid, flags)
    if qd != 1 or an or ns:
        raise BadQuery(FORMERR, qid, flags)
    try:
        labels, pos = _read_name(data, 12)
        if pos + 4 > len(data):
            raise ValueError("question truncated")
        qtype, qclass = struct.unpack_from("!HH", data, pos)
        question = data[12: pos + 4]
        edns, version = _read_opt(data, pos + 4, ar)
    except ValueError:
        raise BadQuery(FORMERR, qid, flags) from None
    return Query(qid, flags, labels, qtype, qclass, question, cache_key(question), edns, version)


def cache_key(question: bytes) -> bytes:
    """The whole question, `bytes.lower()`ed: one call on the fast path. This also folds
    type/class bytes in 65..90 onto 97..122, which is harmless: no type we answer with data
    (1 2 5 6 12 16 28 33 255) or its folded twin has such a byte, so two questions that fold
    together get byte-identical answers apart from the question, which is always the
    client's own; and only class IN (0x0001) answers are cached. A length byte (< 64) is
    never changed, so an invalid name can't fold onto a valid one."""
    return question.lower()


def edns_question_end(data: bytes) -> int | None:
    """For a query with one question and one additional RR: where the question ends, if
    that RR is a plain version-0 OPT filling the rest of the packet; else None (the slow
    path then parses it properly)."""
    pos, n = 12, len(data)
    while pos < n:
        ln = data[pos]
        if ln == 0:
            break
        if ln > 63:
            return None
        pos += ln + 1
    end = pos + 5
    if end + 11 > n or data[end] != 0 or data[end + 1] != 0 or data[end + 2] != OPT_TYPE \
            or data[end + 6] != 0 or end + 11 + int.from_bytes(data[end + 9: end + 11], "big") != n:
        return None
    return end


def bare_opt_tail(data: bytes) -> bool:
    """The packet ends in a bare version-0 OPT (root owner, no options: 11 bytes), as
    dnsperf and most stub resolvers send it: the question is then data[12:-11], no walk
    needed. (If it is not a well-formed question, no cache key and no zone name matches.)"""
    return len(data) >= 28 and data[-11] == 0 and data[-10] == 0 and data[-9] == OPT_TYPE \
        and data[-5] == 0 and data[-2] == 0 and data[-1] == 0


def with_opt(tmpl: bytes) -> bytes:
    """The template with our OPT appended (ARCOUNT + 1)."""
    ar = struct.unpack_from("!H", tmpl, 10)[0] + 1
    return tmpl[:10] + struct.pack("!H", ar) + tmpl[12:] + _OPT_RR


def udp_limit(edns: int | None) -> int:
    return PLAIN_UDP_SIZE if edns is None else max(PLAIN_UDP_SIZE, min(edns, MAX_UDP_SIZE))


def _header(qid: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def error_response(rcode: int, qid: int, query_flags: int, question: bytes = b"",
                   edns: int | None = None) -> bytes:
    """Header (opcode and RD echoed), the question when we have one, an OPT when the client
    sent one; BADVERS goes in the OPT's extended rcode."""
    flags = _QR | (query_flags & 0x7900) | _RA | (rcode & 0xF)
    opt = b""
    if edns is not None:
        opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, OUR_UDP_SIZE, (rcode >> 4) << 24, 0)
    return _header(qid, flags, 1 if question else 0, 0, 0, 1 if opt else 0) + question + opt


def _rdata(rr: RR) -> dnslib.RD:
    d = rr.data
    if rr.rtype == A:
        return dnslib.A(d)
    if rr.rtype == AAAA:
        return dnslib.AAAA(d)
    if rr.rtype in (CNAME, PTR, NS):
        return {CNAME: dnslib.CNAME, PTR: dnslib.PTR, NS: dnslib.NS}[rr.rtype](d + ".")
    if rr.rtype == TXT:
        return dnslib.TXT(d)
    if rr.rtype == SRV:
        return dnslib.SRV(d[0], d[1], d[2], d[3] + ".")
    if rr.rtype == SOA:
        return dnslib.SOA(d[0] + ".", d[1] + ".", tuple(d[2:]))
    raise ValueError(f"no wire form for RR type {rr.rtype}")


def to_dnslib(rr: RR) -> dnslib.RR:
    return dnslib.RR(rr.name + ".", rr.rtype, rdata=_rdata(rr), ttl=rr.ttl)


def template(query: Query, rcode: int, answer: Iterable[dnslib.RR] = (),
             authority: Iterable[dnslib.RR] = (), additional: Iterable[dnslib.RR] = (),
             authoritative: bool = True) -> bytes:
    """A full response for `query`'s question (lower case), ID 0, RD clear, no OPT."""
    rec = dnslib.DNSRecord(dnslib.DNSHeader(id=0, qr=1, aa=int(authoritative), rd=0, ra=1, rcode=rcode),
                           q=dnslib.DNSQuestion(dnslib.DNSLabel([lb.lower() for lb in query.labels]),
                                                query.qtype, query.qclass))
    for rr in answer:
        rec.add_answer(rr)
    for rr in authority:
        rec.add_auth(rr)
    for rr in additional:
        rec.add_ar(rr)
    out = rec.pack()
    if out[12: 12 + len(query.key)].lower() != query.key:  # dnslib must pack the question verbatim
        raise ValueError("template question differs from the query's")
    return out


def truncated(tmpl: bytes, qlen: int) -> bytes:
    """Header with TC and no records, then the question: the client retries over TCP."""
    flags = struct.unpack_from("!H", tmpl, 2)[0] | _TC
    return tmpl[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + tmpl[12: 12 + qlen]


def udp_variant(tmpl: bytes, qlen: int) -> bytes:
    """What a UDP client without EDNS gets: the template, or its truncated form."""
    return tmpl if len(tmpl) <= PLAIN_UDP_SIZE else truncated(tmpl, qlen)


def set_rd(tmpl: bytes) -> bytes:
    return tmpl[:2] + bytes((tmpl[2] | 0x01,)) + tmpl[3:]


def finalize(query: Query, tmpl: bytes, tcp: bool) -> bytes:
    """Patch ID and RD, echo the question as sent, add our OPT, truncate for UDP."""
    if query.edns is not None and query.edns_version != 0:
        return error_response(BADVERS, query.qid, query.flags, query.question, query.edns)
    qlen = len(query.question)
    flags = tmpl[2] | (query.flags >> 8 & 0x01)
    out = struct.pack("!H", query.qid) + bytes((flags,)) + tmpl[3:12] + query.question + tmpl[12 + qlen:]
    if query.edns is not None:
        out = with_opt(out)
    if len(out) <= (MAX_TCP_SIZE if tcp else udp_limit(query.edns)):
        return out
    tc = truncated(out, qlen)
    if query.edns is not None:
        tc = tc[:10] + b"\x00\x01" + tc[12:] + _OPT_RR
    return tc
