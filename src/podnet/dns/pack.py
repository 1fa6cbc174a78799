"""Pack the zone's own answers into wire format, with name compression. No I/O.

dnslib packs general messages (what upstream servers send back); for the records we
build ourselves a direct packer is ~4x cheaper, and the slow path (first question for a
name, and every NXDOMAIN after a zone change) is mostly packing.
SRV targets are never compressed (RFC 2782); CNAME, PTR, NS and SOA names are (RFC 3597).
"""
from __future__ import annotations

import socket
import struct
from typing import Iterable

from podnet.dns.records import A, AAAA, CNAME, NS, PTR, RR, SOA, SRV, TXT

_QR, _AA, _RA = 0x8000, 0x0400, 0x0080
_MAX_POINTER = 0x3FFF
MAX_MESSAGE = 65535


def name_labels(name: str) -> tuple[bytes, ...]:
    return tuple(name.encode("latin-1").split(b".")) if name else ()


class Packer:
    def __init__(self) -> None:
        self.buf = bytearray()
        self._names: dict[tuple[bytes, ...], int] = {}

    def name(self, labels: tuple[bytes, ...], compress: bool = True) -> None:
        buf = self.buf
        for i in range(len(labels)):
            suffix = labels[i:]
            if compress:
                off = self._names.get(suffix)
                if off is not None:
                    buf += struct.pack("!H", 0xC000 | off)
                    return
            if len(buf) <= _MAX_POINTER and suffix not in self._names:
                self._names[suffix] = len(buf)
            buf.append(len(labels[i]))
            buf += labels[i]
        buf.append(0)

    def rr(self, rr: RR) -> None:
        self.name(name_labels(rr.name))
        self.buf += struct.pack("!HHI", rr.rtype, 1, rr.ttl)
        at = len(self.buf)
        self.buf += b"\x00\x00"
        self._rdata(rr)
        struct.pack_into("!H", self.buf, at, len(self.buf) - at - 2)

    def _rdata(self, rr: RR) -> None:
        d, t = rr.data, rr.rtype
        if t == A:
            self.buf += socket.inet_pton(socket.AF_INET, d)
        elif t == AAAA:
            self.buf += socket.inet_pton(socket.AF_INET6, d)
        elif t in (CNAME, PTR, NS):
            self.name(name_labels(d))
        elif t == SRV:
            self.buf += struct.pack("!HHH", d[0], d[1], d[2])
            self.name(name_labels(d[3]), compress=False)
        elif t == TXT:
            raw = d.encode()
            for i in range(0, max(len(raw), 1), 255):
                chunk = raw[i: i + 255]
                self.buf.append(len(chunk))
                self.buf += chunk
        elif t == SOA:
            self.name(name_labels(d[0]))
            self.name(name_labels(d[1]))
            self.buf += struct.pack("!IIIII", *d[2:7])
        else:
            raise ValueError(f"no wire form for RR type {t}")


def zone_template(labels: tuple[bytes, ...], qtype: int, qclass: int, rcode: int,
                  answer: Iterable[RR], authority: Iterable[RR], additional: Iterable[RR]) -> bytes:
    """A response to the question (labels lower-cased by the caller): ID 0, RD clear, AA and
    RA set. Larger than a DNS message can be: header and question only, with TC."""
    an, ns, ar = list(answer), list(authority), list(additional)
    p = Packer()
    p.buf += struct.pack("!HHHHHH", 0, _QR | _AA | _RA | rcode, 1, len(an), len(ns), len(ar))
    p.name(labels)
    p.buf += struct.pack("!HH", qtype, qclass)
    qend = len(p.buf)
    for rr in an + ns + ar:
        p.rr(rr)
    if len(p.buf) > MAX_MESSAGE:
        head = bytearray(p.buf[:qend])
        struct.pack_into("!HHHH", head, 2, _QR | _AA | _RA | 0x0200 | rcode, 1, 0, 0)
        struct.pack_into("!H", head, 10, 0)
        return bytes(head)
    return bytes(p.buf)
