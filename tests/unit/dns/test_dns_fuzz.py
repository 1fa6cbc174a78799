"""Random and mutated packets into the request handler: it never raises, and whatever it
sends back is a well-formed DNS response (dnspython parses it) to the right query ID."""
from __future__ import annotations

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings, strategies as st

from dns_cluster import cluster
from podnet.dns.builder import build_zone
from podnet.dns.responder import Pending, Responder
from test_dns_responder import CannedForwarder, upstream_answer

NAMES = ["web.default.svc.cluster.local", "_http._tcp.web.default.svc.cluster.local",
         "db.default.svc.cluster.local", "ext.default.svc.cluster.local", "nope.cluster.local",
         "10-1-2-3.default.pod.cluster.local", "20.0.96.10.in-addr.arpa", "www.example.test",
         "cluster.local", "."]
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "MX", "ANY", "CNAME", "SOA", "NS", "AXFR", "TYPE999"]

_fwd = CannedForwarder({("www.example.test", 1): upstream_answer("www.example.test", "203.0.113.80")})
_r = Responder(forwarder=_fwd)
_r.set_zone(build_zone(cluster()))


def _seeds() -> list[bytes]:
    out = []
    for n in NAMES:
        for t in TYPES:
            for edns in (False, 0):
                out.append(dns.message.make_query(n, t, use_edns=edns).to_wire())
    return out


SEEDS = _seeds()


def check(data: bytes, tcp: bool) -> None:
    out = _r.handle_strict(data, tcp)
    if isinstance(out, Pending):
        out = out.run()
    fast, fast_edns, via_udp = _r.fast(data), _r.fast_edns(data), _r.udp_strict(data)
    for resp in (out, fast, fast_edns, via_udp):
        if resp is None:
            continue
        assert resp[:2] == data[:2]
        m = dns.message.from_wire(resp, ignore_trailing=False)
        assert m.flags & 0x8000  # QR
        assert len(m.question) <= 1
        if not tcp and resp is out or resp is via_udp:
            assert len(resp) <= 4096


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(data, tcp):
    check(data, tcp)


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == 0 and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2 and data:
            del data[pos: pos + draw(st.integers(1, 8))]
        else:
            data = data[:pos]
    return bytes(data)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated(), st.booleans())
def test_mutated_queries(data, tcp):
    check(data, tcp)


def test_every_seed_answers_sensibly():
    for data in SEEDS:
        out = _r.handle_strict(data)
        if isinstance(out, Pending):
            out = out.run()
        m = dns.message.from_wire(out)
        assert m.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED,
                             dns.rcode.NOTIMP, dns.rcode.SERVFAIL)
