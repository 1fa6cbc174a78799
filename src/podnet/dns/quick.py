"""The quick path: the common cluster-zone answers to an uncached UDP question, without
parsing it. Pure (no I/O).

What pods mostly ask, and what a cache cannot hold when the zone is large: the NXDOMAINs
of `ndots:5` search lists (each lookup tries `<name>.<ns>.svc.<zone>`, `<name>.svc.<zone>`,
`<name>.<zone>` first), NODATA (AAAA of an IPv4-only Service) and the A/AAAA of ClusterIP
Services. The slow path spends ~90 us of Python per question (parse, resolve, pack);
this path looks the lower-cased question's name up in `Zone.wire` (the zone's names by
wire form, kept by the builder) and answers from templates:
- NXDOMAIN for a well-formed name strictly below the apex that is not in the zone and
  not shaped like a pod name; NODATA for a name of the zone without the type (and without
  a CNAME). Both are header + question + the zone's SOA, whose names compress against the
  question's tail, so the bytes after the question depend on the question only through
  its length: one template per (length, rcode, OPT), packed once by the real packer.
  The label walk that checks a name is well-formed is done once per *parent* name (the
  search domains under a name: few) and remembered.
- A/AAAA of a name with exactly one such address: the header, the client's question and
  one RR whose owner is a pointer to the question, packed on the spot.
The responder keeps these answers in its cache too, until the cache first rotates in a
zone (`Responder._quick_for`): past that the working set is bigger than the cache.
Everything else (pod names, SRV, several addresses, CNAMEs, reverse names, questions under
`dns.<zone>` or `hostmaster.<zone>`, ANY, other classes) returns None: the slow path
answers. The unit tests hold each quick answer to the slow path's bytes.
"""
from __future__ import annotations

import socket
import struct
from socket import inet_pton

from podnet.dns import wire
from podnet.dns.lookup import MX, NOERROR, NXDOMAIN
from podnet.dns.pack import zone_template
from podnet.dns.records import (A, AAAA, CNAME, NS, PTR, REVERSE_V4, REVERSE_V6, SOA, SRV, TXT, Zone,
                                wire_name)

# Types whose negative answers the quick path may give: every type we answer with data,
# and MX; never ANY, zone transfers or meta types, which the parser decides (REFUSED,
# NOTIMP, FORMERR) and `resolve` answers differently.
QUICK_TYPES = frozenset({A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV})
_ADDR_FAMILY = {A: socket.AF_INET, AAAA: socket.AF_INET6}
# header from byte 2 of a one-address answer, by RD + 2 * (EDNS): QR AA (RD) RA; qd 1, an 1, ns 0, ar 0/1
_ANSWER_HEAD = tuple(struct.pack("!HHHHH", 0x8480 | rd << 8, 1, 1, 0, opt) for opt in (0, 1) for rd in (0, 1))
MAX_PARENTS = 4096  # remembered label walks (a memo, not answers)


class QuickAnswers:
    """The quick path's tables for one zone: its names by wire form, the negative templates
    by (name length, rcode, OPT) as (RD 0, RD 1) from byte 2 on, the parent names walked."""

    def __init__(self, zone: Zone, names: dict[bytes, dict], origin_wire: bytes):
        self.zone, self.names = zone, names
        self.origin_wire = origin_wire
        # a question ending in one of these names would compress the SOA's own names
        # against itself: its negative answer would not be the template of its length
        self.own_names = (b"\x03dns" + origin_wire, b"\x0ahostmaster" + origin_wire)
        self.pod_suffix = b"\x03pod" + origin_wire
        self.neg: dict[tuple[int, int, bool], tuple[bytes, bytes]] = {}
        self.parents: dict[bytes, int] = {}

    @classmethod
    def for_zone(cls, zone: Zone) -> "QuickAnswers | None":
        """None when the zone has no wire table (built by hand) or its apex could be the
        tail of a reverse name (then "ends in the apex" would not mean "in the zone")."""
        ow = wire_name(zone.origin)
        if zone.wire is None or ow is None or len(ow) < 2:
            return None
        if any(w.endswith(ow) or ow.endswith(w) for w in (wire_name(REVERSE_V4), wire_name(REVERSE_V6)) if w):
            return None
        return cls(zone, zone.wire, ow)

    def answer(self, data: bytes, qs: bytes, key: bytes, opt: bool) -> bytes | None:
        """The response to `data` (a UDP query with one question, RD the only flag that may
        be set; `qs` the question as sent, `key` lower-cased; `opt`: a bare EDNS0 OPT
        follows it), or None."""
        if len(key) < 6 or key[-2:] != b"\x00\x01":
            return None  # (a name is at least one byte, the root; then type and class IN)
        qtype = key[-4] << 8 | key[-3]
        if qtype not in QUICK_TYPES:
            return None
        w = key[:-4]
        sets = self.names.get(w)
        if sets is None:
            # NXDOMAIN if `w` is a well-formed name strictly below the apex, not pod-shaped:
            # its first label, then its parent's walk (remembered: few parents).
            n = w[0]
            if not 0 < n < 64 or len(w) > wire.MAX_NAME:
                return None
            depth = self.parents.get(parent := w[n + 1:])
            if depth is None:
                depth = self._remember(parent)
            if depth < 0 or depth == 2 and w.endswith(self.pod_suffix):
                return None  # not ours to say; <ip>.<ns>.pod: the slow path decides
            rcode = NXDOMAIN
        else:
            rrs = sets.get(qtype)
            if rrs is not None:
                if len(rrs) != 1 or qtype not in _ADDR_FAMILY:
                    return None  # several addresses rotate (the slow path's); others: additional
                rr = rrs[0]
                raw = inet_pton(_ADDR_FAMILY[qtype], rr.data)
                out = data[:2] + _ANSWER_HEAD[data[2] + 2 * opt] + qs + b"\xc0\x0c" + \
                    struct.pack("!HHIH", qtype, 1, rr.ttl, len(raw)) + raw
                return out + wire.OPT_RR if opt else out
            if CNAME in sets or not w.endswith(self.origin_wire):
                return None  # a CNAME to chase; a reverse name (its SOA is another's)
            rcode = NOERROR
        if w.endswith(self.own_names[0]) or w.endswith(self.own_names[1]):
            return None
        ent = self.neg.get((len(w), rcode, opt))
        if ent is None:
            ent = self._negative_template(w, qtype, rcode, opt)
            if ent is None:
                return None
        t = ent[data[2]]
        return data[:2] + t[:10] + qs + t[10 + len(qs):]

    def _remember(self, parent: bytes) -> int:
        depth = self._depth(parent)
        if len(self.parents) >= MAX_PARENTS:
            self.parents.clear()  # a memo of label walks: refilled in a few queries
        self.parents[parent] = depth
        return depth

    def _depth(self, w: bytes) -> int:
        """Labels of wire name `w` above the apex (0: the apex), or -1 when `w` is not a
        well-formed name ending in the apex."""
        ow = self.origin_wire
        cut = len(w) - len(ow)
        if cut < 0 or not w.endswith(ow):
            return -1
        pos = depth = 0
        while pos < cut:
            n = w[pos]
            if not 0 < n < 64:
                return -1
            pos += n + 1
            depth += 1
        return depth if pos == cut else -1

    def _negative_template(self, w: bytes, qtype: int, rcode: int, opt: bool) -> tuple[bytes, bytes] | None:
        """Pack this question's negative answer with the real packer and keep it for every
        name of its length."""
        tmpl = zone_template(_labels(w), qtype, 1, rcode, (), (self.zone.soa(),), ())
        if opt:
            tmpl = wire.with_opt(tmpl)
        if len(tmpl) > wire.PLAIN_UDP_SIZE:
            return None
        ent = (tmpl[2:], wire.set_rd(tmpl)[2:])
        self.neg[(len(w), rcode, opt)] = ent
        return ent


def _labels(w: bytes) -> tuple[bytes, ...]:
    """The labels of a well-formed wire name."""
    out, pos = [], 0
    while w[pos]:
        out.append(w[pos + 1: pos + 1 + w[pos]])
        pos += 1 + w[pos]
    return tuple(out)
