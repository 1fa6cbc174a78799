"""The quick path (answers without parsing) against the slow path: for every question it
takes, the very same bytes; the questions it must leave to the slow path, left."""
from __future__ import annotations

import struct

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings, strategies as st

from bench_modules import load_bench
from dns_cluster import cluster, endpoint_slice, ep, service
from podnet.api.objects import from_dict
from podnet.calc.model import ClusterState
from podnet.dns.builder import ZoneBuilder, build_zone
from podnet.dns.responder import Pending, Responder

dns_mix = load_bench("dns_mix")  # the bench's query mix


def _state() -> ClusterState:
    st_ = cluster()
    eps = [ep(f"10.244.1.{i}") for i in range(1, 4)]
    st_.put(service("default", "hl", clusterIP="None"))
    st_.put(endpoint_slice("default", "hl", eps, []))
    return st_


def _pair(state: ClusterState | None = None) -> tuple[Responder, Responder]:
    zone = build_zone(state or _state(), serial=7)
    quick, slow = Responder(), Responder()
    quick.set_zone(zone)
    slow.set_zone(zone)
    return quick, slow


def _slow(r: Responder, data: bytes) -> bytes | None:
    out = r.handle_strict(data)
    return out.run() if isinstance(out, Pending) else out


def _question(labels: list[bytes], qtype: int) -> bytes:
    return b"".join(bytes((len(lb),)) + lb for lb in labels) + b"\x00" + struct.pack("!HH", qtype, 1)


def _query(qid: int, rd: bool, question: bytes, edns: bool) -> bytes:
    head = struct.pack("!HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 1 if edns else 0)
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0) if edns else b""
    return head + question + opt


def _quick(r: Responder, data: bytes) -> bytes | None:
    edns = data[11] == 1
    qs = data[12:-11] if edns else data[12:]
    return r.quick(data, qs, qs.lower(), edns)


LABELS = [b"web", b"WeB", b"v4only", b"db", b"db-0", b"hl", b"ext", b"inner", b"nope", b"default",
          b"DEFAULT", b"other", b"quiet", b"app", b"svc", b"pod", b"cluster", b"local", b"dns", b"ns",
          b"hostmaster", b"dns-version", b"_http", b"_tcp", b"10-244-1-5", b"1-2-3-4", b"in-addr",
          b"arpa", b"20", b"0", b"96", b"10", b"a.b", b"\x07cluster", b"x" * 63]
TYPES = [1, 28, 33, 12, 16, 15, 5, 6, 2, 255, 252, 999, 0, 41, 200]
SUFFIXES = [[b"cluster", b"local"], [b"svc", b"cluster", b"local"], [b"default", b"svc", b"cluster", b"local"],
            [b"in-addr", b"arpa"], [b"example", b"test"], []]


@st.composite
def questions(draw):
    labels = draw(st.lists(st.sampled_from(LABELS), max_size=5)) + draw(st.sampled_from(SUFFIXES))
    if draw(st.booleans()):
        labels = [bytes(c ^ 0x20 if 97 <= c <= 122 and draw(st.booleans()) else c for c in lb) for lb in labels]
    return _question(labels, draw(st.sampled_from(TYPES)))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(questions(), st.integers(0, 0xFFFF), st.booleans(), st.booleans())
def test_quick_answers_are_the_slow_paths_bytes(question, qid, rd, edns):
    quick, slow = _pair_once()
    data = _query(qid, rd, question, edns)
    out = _quick(quick, data)
    if out is not None:
        assert out == _slow(slow, data)
    via_udp = quick.udp(data)  # quick, old generation or slow: the same bytes as the slow path
    if isinstance(via_udp, Pending):
        via_udp = via_udp.run()
    want = _slow(slow, data)
    assert via_udp == want or _rotated(via_udp, want)


def _rotated(a: bytes | None, b: bytes | None) -> bool:
    """The same answer in another order: several addresses of one name are rotated
    (CoreDNS's loadbalance), so two responders with different histories differ there."""
    if a is None or b is None:
        return False
    ma, mb = dns.message.from_wire(a), dns.message.from_wire(b)
    return len(ma.answer) == 1 and len(ma.answer[0]) > 1 and ma.answer == mb.answer and \
        ma.id == mb.id and ma.flags == mb.flags and ma.question == mb.question


_PAIR: list[tuple[Responder, Responder]] = []


def _pair_once() -> tuple[Responder, Responder]:
    if not _PAIR:
        _PAIR.append(_pair())
    return _PAIR[0]


def test_the_bench_mix_is_answered_quickly_and_exactly():
    """Every query of bench/dns_mix.py's mix (30 Services) takes the quick path, plain and
    EDNS, and gets the slow path's bytes: this is what the cold pass measures."""
    objs = [from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})]
    objs += [from_dict(dns_mix.service(i)) for i in range(30)]
    quick, slow = _pair(ClusterState.from_objects(objs))
    rcodes: dict[int, int] = {}
    for i, line in enumerate(dns_mix.query_lines(30)):
        name, rdtype = line.split()
        for edns in (False, True):
            data = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=1232).to_wire()
            out = _quick(quick, data)
            assert out is not None, line
            assert out == _slow(slow, data), line
            rc = dns.message.from_wire(out).rcode()
            rcodes[rc] = rcodes.get(rc, 0) + 1
    want = dns_mix.expected_rcodes(30)
    assert rcodes == {dns.rcode.NOERROR: 2 * want["NOERROR"], dns.rcode.NXDOMAIN: 2 * want["NXDOMAIN"]}


def test_left_to_the_slow_path():
    quick, _ = _pair()
    for name, qtype in [("1-2-3-4.default.pod.cluster.local", 1),    # pod names: resolved on demand
                        ("hl.default.svc.cluster.local", 1),         # several addresses: rotated
                        ("_http._tcp.web.default.svc.cluster.local", 33),  # SRV: additional records
                        ("ext.default.svc.cluster.local", 1),        # CNAME out of the zone
                        ("inner.default.svc.cluster.local", 28),     # CNAME inside it
                        ("x.dns.cluster.local", 1),                  # compresses against the SOA's names
                        ("nope.default.svc.cluster.local", 255),     # ANY
                        ("www.example.test", 1),                     # not ours
                        ("5.1.244.10.in-addr.arpa", 12)]:            # reverse: another SOA owner
        data = _query(1, True, _question(name.encode().split(b"."), qtype), False)
        assert _quick(quick, data) is None, name


def test_negative_templates_follow_the_zone():
    builder = ZoneBuilder()
    st_ = _state()
    r = Responder()
    r.set_zone(builder.build(st_, serial=3))
    data = _query(9, True, _question([b"nope", b"app", b"svc", b"cluster", b"local"], 1), False)
    assert dns.message.from_wire(_quick(r, data)).authority[0][0].serial == 3
    st_.put(service("default", "v4only", clusterIP="10.96.0.55"))
    r.set_zone(builder.build(st_, serial=4, changed={("Service", "default", "v4only")}))
    assert dns.message.from_wire(_quick(r, data)).authority[0][0].serial == 4


def test_quick_answers_are_kept_until_the_cache_rotates_and_follow_the_zone():
    builder = ZoneBuilder()
    st_ = _state()
    r = Responder()
    r.set_zone(builder.build(st_))
    v4 = _query(2, True, _question([b"v4only", b"default", b"svc", b"cluster", b"local"], 1), False)
    assert r.fast(v4) is None
    first = r.udp(v4)
    assert [rd.to_text() for rrset in dns.message.from_wire(first).answer for rd in rrset] == ["10.96.0.21"]
    assert r.fast(v4) == first  # kept: the next asker gets a hit
    no_rd = _query(3, False, _question([b"v4only", b"default", b"svc", b"cluster", b"local"], 1), False)
    assert r.fast(no_rd) == _slow(_pair()[1], no_rd)  # the other RD variant is right too
    st_.put(service("default", "v4only", clusterIP="10.96.0.55"))
    r.set_zone(builder.build(st_, serial=2, changed={("Service", "default", "v4only")}))
    assert r.fast(v4) is None
    m = dns.message.from_wire(r.udp(v4))
    assert [rd.to_text() for rrset in m.answer for rd in rrset] == ["10.96.0.55"]


def test_quick_answers_stop_being_kept_once_the_cache_rotates():
    r = Responder(cache_bytes=3000)  # room for a couple of answers a generation
    r.set_zone(build_zone(_state()))
    names = [f"n{i}.app.svc.cluster.local".encode().split(b".") for i in range(12)]
    queries = [_query(i, True, _question(n, 1), False) for i, n in enumerate(names)]
    for q in queries:
        assert dns.message.from_wire(r.udp(q)).rcode() == dns.rcode.NXDOMAIN
    assert r.cache.rotations == 1  # one rotation, then no more keeping
    assert r.fast(queries[-1]) is None and len(r.cache) < len(queries)
