"""The request handler, bytes in and bytes out, checked with dnspython as an independent parser."""
from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dnslib
import pytest

from dns_cluster import cluster, endpoint_slice, ep, service
from podnet.calc.model import ClusterState
from podnet.dns.forward import Forwarder
from podnet.dns.builder import build_zone
from podnet.dns.responder import Pending, Responder


def responder(state: ClusterState | None = None, forwarder: Forwarder | None = None) -> Responder:
    r = Responder(forwarder=forwarder)
    r.set_zone(build_zone(state or cluster()))
    return r


def ask(r: Responder, name: str, rdtype: str = "A", tcp: bool = False, **kw) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    out = r.handle(q.to_wire(), tcp=tcp)
    if isinstance(out, Pending):
        out = out.run()
    assert isinstance(out, bytes)
    m = dns.message.from_wire(out)
    assert m.id == q.id
    return m


def addrs(m: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in m.answer for rd in rrset)


def test_positive_answer_is_authoritative_and_echoes_question_case():
    r = responder()
    m = ask(r, "WeB.DeFault.SVC.cluster.LOCAL")
    assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA
    assert str(m.question[0].name) == "WeB.DeFault.SVC.cluster.LOCAL."
    assert addrs(m) == ["10.96.0.20"]
    assert m.answer[0].ttl == 30


def test_fast_path_gives_the_same_bytes_as_the_slow_path():
    r = responder()
    q = dns.message.make_query("web.default.svc.cluster.local", "AAAA")
    assert r.fast(q.to_wire()) is None
    slow = r.handle(q.to_wire())
    q2 = dns.message.make_query("WEB.default.svc.cluster.local", "AAAA")
    q2.flags &= ~dns.flags.RD
    fast = r.fast(q2.to_wire())
    assert fast is not None
    m = dns.message.from_wire(fast)
    assert m.id == q2.id and not m.flags & dns.flags.RD and str(m.question[0].name).startswith("WEB.")
    assert addrs(m) == addrs(dns.message.from_wire(slow)) == ["fd00:10:96::20"]


def test_negative_answers_carry_soa():
    r = responder()
    nx = ask(r, "nope.default.svc.cluster.local")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in nx.authority] == [dns.rdatatype.SOA]
    soa = nx.authority[0][0]
    assert (str(soa.mname), str(soa.rname), soa.minimum) == ("ns.dns.cluster.local.", "hostmaster.cluster.local.", 30)
    nodata = ask(r, "v4only.default.svc.cluster.local", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority


def test_srv_with_additional_and_ptr_and_txt():
    r = responder()
    m = ask(r, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [rd.to_text() for rd in m.answer[0]] == ["0 100 80 web.default.svc.cluster.local."]
    assert sorted(rd.to_text() for rrset in m.additional for rd in rrset) == ["10.96.0.20", "fd00:10:96::20"]
    assert addrs(ask(r, "20.0.96.10.in-addr.arpa", "PTR")) == ["web.default.svc.cluster.local."]
    assert addrs(ask(r, "dns-version.cluster.local", "TXT")) == ['"1.1.0"']


def test_big_answer_truncates_on_udp_only():
    eps = [ep(f"10.244.1.{i}") for i in range(1, 60)]
    st = ClusterState.from_objects([service("default", "big", clusterIP="None"),
                                    endpoint_slice("default", "big", eps, [])])
    r = responder(st)
    udp = ask(r, "big.default.svc.cluster.local", use_edns=False)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(r, "big.default.svc.cluster.local", tcp=True, use_edns=False)
    assert not tcp.flags & dns.flags.TC and len(addrs(tcp)) == 59
    edns = ask(r, "big.default.svc.cluster.local", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and len(addrs(edns)) == 59 and edns.edns == 0
    small = ask(r, "big.default.svc.cluster.local", use_edns=0, payload=512)
    assert small.flags & dns.flags.TC and small.edns == 0
    q = dns.message.make_query("big.default.svc.cluster.local", "A", use_edns=False)
    fast = r.fast(q.to_wire())  # the cached UDP variant is the truncated one
    assert fast is not None and dns.message.from_wire(fast).flags & dns.flags.TC


def test_errors():
    r = responder()
    base = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    assert r.handle(base[:11]) is None                              # too short to answer
    assert r.handle(base[:2] + b"\x80" + base[3:]) is None          # a response
    notimp = r.handle(base[:2] + bytes((base[2] | 0x10,)) + base[3:])  # opcode 2 (STATUS)
    assert dns.message.from_wire(notimp).rcode() == dns.rcode.NOTIMP
    for bad in (base[:20],                                                     # truncated question
                base[:5] + b"\x02" + base[6:],                                 # qdcount 2
                base[:12] + b"\xc0\x0c" + base[-4:],                           # pointer loop
                base[:12] + b"\x3f" + b"a" * 63 * 5 + b"\x00" + base[-4:]):   # name > 255
        out = r.handle(bad)
        assert out[:2] == base[:2] and out[3] & 0x0F == dns.rcode.FORMERR
    ch = dns.message.make_query("version.bind", "TXT", rdclass="CH")
    assert dns.message.from_wire(r.handle(ch.to_wire())).rcode() == dns.rcode.REFUSED
    assert ask(r, "cluster.local", "AXFR").rcode() == dns.rcode.REFUSED
    assert ask(r, "www.example.test").rcode() == dns.rcode.REFUSED   # no upstream configured
    assert ask(r, "web.default.svc.cluster.local", "MAILB").rcode() == dns.rcode.NOTIMP
    v1 = ask(r, "web.default.svc.cluster.local", use_edns=1)
    assert v1.rcode() == dns.rcode.BADVERS


def test_servfail_before_first_sync():
    r = Responder()
    assert ask(r, "web.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
    assert ask(r, "20.0.96.10.in-addr.arpa", "PTR").rcode() == dns.rcode.SERVFAIL


def test_new_zone_replaces_cached_answers():
    r = responder()
    assert addrs(ask(r, "web.default.svc.cluster.local")) == ["10.96.0.20"]
    st = cluster()
    st.put(service("default", "web", clusterIP="10.96.0.99"))
    r.set_zone(build_zone(st))
    q = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=False)
    assert r.fast(q.to_wire()) is None
    assert addrs(ask(r, "web.default.svc.cluster.local")) == ["10.96.0.99"]


class CannedForwarder(Forwarder):
    """The upstream seam, faked: answers from a dict, counts questions."""

    def __init__(self, answers: dict[tuple[str, int], dnslib.DNSRecord]):
        super().__init__([("192.0.2.1", 53)])
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def query(self, labels, qtype, qclass=1):
        key = (b".".join(labels).decode().lower(), qtype)
        self.asked.append(key)
        return self.answers.get(key)


def upstream_answer(name: str, ip: str) -> dnslib.DNSRecord:
    rec = dnslib.DNSRecord(dnslib.DNSHeader(qr=1, ra=1), q=dnslib.DNSQuestion(name))
    rec.add_answer(dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A(ip), ttl=60))
    return rec


def test_forward_and_external_name_chase():
    fwd = CannedForwarder({("www.example.test", 1): upstream_answer("www.example.test", "203.0.113.80")})
    r = responder(forwarder=fwd)
    m = ask(r, "WWW.example.test")
    assert addrs(m) == ["203.0.113.80"] and not m.flags & dns.flags.AA
    assert str(m.question[0].name) == "WWW.example.test."
    m = ask(r, "ext.default.svc.cluster.local")
    assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in m.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert addrs(m) == ["203.0.113.80", "www.example.test."]
    assert ask(r, "unknown.example.test").rcode() == dns.rcode.SERVFAIL  # upstream gave nothing


def test_cache_ttl_rules():
    f = Forwarder([("192.0.2.1", 53)], max_ttl=30)
    assert f.cache_ttl(upstream_answer("a.test", "192.0.2.5")) == 30
    short = upstream_answer("a.test", "192.0.2.5")
    short.rr[0].ttl = 3
    assert f.cache_ttl(short) == 3
    neg = dnslib.DNSRecord(dnslib.DNSHeader(qr=1, rcode=3), q=dnslib.DNSQuestion("x.test"))
    neg.add_auth(dnslib.RR("test", dnslib.QTYPE.SOA, ttl=20,
                           rdata=dnslib.SOA("ns.test", "h.test", (1, 2, 3, 4, 7))))
    assert f.cache_ttl(neg) == 7
    neg.auth = []
    assert f.cache_ttl(neg) == 0


def test_header_only_garbage_gets_formerr():
    r = responder()
    out = r.handle(struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0))
    assert out is not None and out[:2] == b"\x12\x34" and out[3] & 0xF == dns.rcode.FORMERR


@pytest.mark.parametrize("name", ["a.b\\.c.cluster.local", "web\\.default.svc.cluster.local"])
def test_dotted_labels_never_match(name):
    r = responder()
    m = ask(r, name)
    assert m.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.REFUSED) and not m.answer


def test_unchanged_services_keep_their_cached_answers_across_zones():
    from podnet.dns.builder import ZoneBuilder
    st = cluster()
    builder = ZoneBuilder()
    r = Responder()
    r.set_zone(builder.build(st))
    for name in ("web.default.svc.cluster.local", "v4only.default.svc.cluster.local", "nope.cluster.local"):
        ask(r, name)
    st.put(service("default", "v4only", clusterIP="10.96.0.55"))
    r.set_zone(builder.build(st, serial=2, changed={("Service", "default", "v4only")}))

    def cached(name):
        return r.fast(dns.message.make_query(name, "A", use_edns=False).to_wire()) is not None
    assert cached("web.default.svc.cluster.local")          # same records: kept
    assert not cached("v4only.default.svc.cluster.local")   # changed: rebuilt on next query
    assert not cached("nope.cluster.local")                 # negative: new SOA serial
    assert addrs(ask(r, "v4only.default.svc.cluster.local")) == ["10.96.0.55"]
    assert ask(r, "nope.cluster.local").authority[0][0].serial == 2


def test_headless_answers_rotate_like_loadbalance():
    eps = [ep(f"10.244.1.{i}") for i in range(1, 5)]
    st = ClusterState.from_objects([service("default", "hl", clusterIP="None"),
                                    endpoint_slice("default", "hl", eps, [])])
    r = responder(st)
    firsts = []
    for i in range(8):
        q = dns.message.make_query("hl.default.svc.cluster.local", "A", use_edns=bool(i % 2))
        out = r.fast(q.to_wire()) if i % 2 == 0 and i else None
        if out is None:
            out = r.handle(q.to_wire())
        m = dns.message.from_wire(out)
        assert addrs(m) == [f"10.244.1.{i}" for i in range(1, 5)]  # always the whole set
        firsts.append(next(iter(m.answer[0])).to_text())
    assert len(set(firsts)) == 4


def test_mixed_case_fast_path_keeps_the_clients_bytes():
    r = responder()
    ask(r, "web.default.svc.cluster.local")
    wire_q = dns.message.make_query("wEb.DEFAULT.svc.cluster.local", "A", use_edns=False).to_wire()
    out = r.fast(wire_q)
    assert out is not None and out[12:len(wire_q)] == wire_q[12:]
    assert addrs(dns.message.from_wire(out)) == ["10.96.0.20"]


def test_edns_fast_path_matches_the_slow_path():
    r = responder()
    q = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=0, payload=1232)
    assert r.fast_edns(q.to_wire()) is None
    slow = dns.message.from_wire(r.handle(q.to_wire()))
    q2 = dns.message.make_query("WEB.default.svc.cluster.local", "A", use_edns=0, payload=4096)
    out = r.fast_edns(q2.to_wire())
    assert out is not None
    m = dns.message.from_wire(out)
    assert m.id == q2.id and m.edns == 0 and m.payload == 1232 and str(m.question[0].name).startswith("WEB.")
    assert addrs(m) == addrs(slow) == ["10.96.0.20"]
    # a cookie option (as dig sends) is fine; EDNS version 1 is not for the fast path
    q3 = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=0,
                                options=[dns.edns.GenericOption(10, b"12345678")])
    assert r.fast_edns(q3.to_wire()) is not None
    q4 = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=1)
    assert r.fast_edns(q4.to_wire()) is None


def test_edns_fast_path_skips_big_answers():
    eps = [ep(f"10.244.1.{i}") for i in range(1, 60)]
    st = ClusterState.from_objects([service("default", "big", clusterIP="None"),
                                    endpoint_slice("default", "big", eps, [])])
    r = responder(st)
    q = dns.message.make_query("big.default.svc.cluster.local", "A", use_edns=0, payload=4096)
    r.handle(q.to_wire())
    assert r.fast_edns(q.to_wire()) is None  # the slow path decides TC by the client's size
