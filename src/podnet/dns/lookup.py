"""Answer one question from a `Zone`: the records, the rcode, and what must go upstream. Pure.

Decides NXDOMAIN vs NODATA as CoreDNS's kubernetes plugin does (checklist §7): a name
that exists with no RRset of the asked type is NODATA; every negative answer carries the
SOA in Authority. Names outside the cluster zone, and reverse names we do not know
(CoreDNS's default `fallthrough in-addr.arpa ip6.arpa`), are marked `forward`. Only SRV, MX
and NS answers carry Additional records (the targets' addresses, the name server's glue),
as in CoreDNS: the zone keeps them by owner name, and an apex SOA must not get the NS glue.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.dns.records import (A, AAAA, CNAME, NS, REVERSE_V4, REVERSE_V6, RR, SRV, Zone)

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
ANY = 255
MX = 15
MAX_CNAME_CHAIN = 8
WITH_ADDITIONAL = frozenset({SRV, MX, NS})  # answer types that carry Additional records


@dataclass(frozen=True)
class Answer:
    rcode: int = NOERROR
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()
    forward: bool = False  # not ours: ask the upstream servers the question as it is
    chase: str = ""        # the CNAME chain left the zone: ask upstream for this name, append


def in_zone(zone: Zone, qname: str) -> bool:
    return qname == zone.origin or qname.endswith("." + zone.origin)


def _reverse(qname: str) -> str:
    if qname == REVERSE_V4 or qname.endswith("." + REVERSE_V4):
        return REVERSE_V4
    if qname == REVERSE_V6 or qname.endswith("." + REVERSE_V6):
        return REVERSE_V6
    return ""


def _pod_ip(label: str) -> str | None:
    """`10-244-1-5` -> 10.244.1.5; `fd00-10-244--5` -> fd00:10:244::5; else None."""
    if label.count("-") == 3:
        cand = label.replace("-", ".")
        try:
            if ipaddress.ip_address(cand).version == 4:
                return cand
        except ValueError:
            pass
    try:
        ip = ipaddress.ip_address(label.replace("-", ":"))
    except ValueError:
        return None
    return str(ip) if ip.version == 6 else None


def _pod_rrsets(zone: Zone, qname: str) -> dict[int, list[RR]] | None:
    """RRsets for `<ip-label>.<ns>.pod.<zone>`, or None when the name does not exist."""
    labels = qname[: -len(zone.origin) - 1].split(".")
    if len(labels) != 3 or labels[2] != "pod" or zone.pods_mode == "disabled":
        return None
    label, ns = labels[0], labels[1]
    if ns not in zone.namespaces:
        return None
    ip = _pod_ip(label)
    if ip is None:
        return None
    if zone.pods_mode == "verified" and ip not in zone.pod_ips.get(ns, frozenset()):
        return None
    t = A if ipaddress.ip_address(ip).version == 4 else AAAA
    return {t: [RR(qname, t, zone.ttl, ip)]}


def _rrsets(zone: Zone, qname: str) -> dict[int, list[RR]] | None:
    found = zone.rrsets.get(qname)
    if found is not None:
        return found
    if in_zone(zone, qname):
        return _pod_rrsets(zone, qname)
    return None


def _negative(zone: Zone, qname: str, rcode: int, answer: tuple[RR, ...] = ()) -> Answer:
    rev = _reverse(qname)
    return Answer(rcode, answer, (zone.soa(rev or None),))


def resolve(zone: Zone, qname: str, qtype: int) -> Answer:
    """`qname` lower case, no trailing dot; `qtype` a number (255 = ANY)."""
    if not in_zone(zone, qname) and not _reverse(qname):
        return Answer(forward=True)
    chain: list[RR] = []
    name = qname
    for _ in range(MAX_CNAME_CHAIN + 1):
        sets = _rrsets(zone, name)
        if sets is None:
            if name != qname and not in_zone(zone, name) and not _reverse(name):
                return Answer(NOERROR, tuple(chain), chase=name)
            if not chain and _reverse(name) and not in_zone(zone, name):
                return Answer(forward=True)  # fallthrough for reverse names that aren't ours
            return _negative(zone, name, NXDOMAIN, tuple(chain))
        if qtype == ANY:
            rrs = [rr for t in sorted(sets) for rr in sets[t]]
            return Answer(NOERROR, tuple(chain + rrs)) if rrs or chain else _negative(zone, name, NOERROR)
        if qtype in sets:
            rrs = sets[qtype]
            extra = tuple(zone.additional.get(name, ())) if qtype in WITH_ADDITIONAL else ()
            return Answer(NOERROR, tuple(chain + rrs), (), extra)
        if CNAME in sets and qtype != CNAME:
            cname = sets[CNAME][0]
            chain.append(cname)
            name = cname.data
            continue
        return _negative(zone, name, NOERROR, tuple(chain))
    # A loop or a chain longer than 8: answer what we have, like CoreDNS does.
    return Answer(NOERROR, tuple(chain))
