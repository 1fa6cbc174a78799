"""Our packer against an independent parser (dnspython)."""
from __future__ import annotations

import dns.message
import pytest

from podnet.calc.model import ClusterState
from podnet.dns.pack import name_labels, zone_template
from podnet.dns.builder import ZoneBuilder, build_zone
from podnet.dns.records import A, AAAA, CNAME, PTR, RR, SOA, SRV, TXT
from dns_cluster import service

Q = name_labels("web.default.svc.cluster.local")


def parse(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire)


def test_every_type_round_trips():
    rrs = [RR("web.default.svc.cluster.local", A, 30, "10.96.0.20"),
           RR("web.default.svc.cluster.local", AAAA, 30, "fd00:10:96::20"),
           RR("web.default.svc.cluster.local", CNAME, 30, "x.example.test"),
           RR("20.0.96.10.in-addr.arpa", PTR, 30, "web.default.svc.cluster.local"),
           RR("_http._tcp.web.default.svc.cluster.local", SRV, 30, (0, 100, 80, "web.default.svc.cluster.local")),
           RR("dns-version.cluster.local", TXT, 28800, "1.1.0"),
           RR("web.default.svc.cluster.local", TXT, 30, "x" * 600)]
    soa = RR("cluster.local", SOA, 30, ("ns.dns.cluster.local", "hostmaster.cluster.local", 9, 7200, 1800, 86400, 30))
    m = parse(zone_template(Q, 1, 1, 0, rrs, [soa], []))
    got = sorted(f"{rrset.name} {rrset.ttl} {rd.to_text()}" for rrset in m.answer for rd in rrset)
    assert "web.default.svc.cluster.local. 30 10.96.0.20" in got
    assert "_http._tcp.web.default.svc.cluster.local. 30 0 100 80 web.default.svc.cluster.local." in got
    assert "20.0.96.10.in-addr.arpa. 30 web.default.svc.cluster.local." in got
    assert any(rd.to_text().count('"') == 6 for rrset in m.answer for rd in rrset)  # 600 chars: 3 strings
    assert m.authority[0][0].serial == 9 and m.flags & 0x0400 and m.flags & 0x8000


def test_compression_makes_repeated_names_small():
    rrs = [RR("db.default.svc.cluster.local", A, 30, f"10.244.0.{i}") for i in range(1, 50)]
    wire = zone_template(name_labels("db.default.svc.cluster.local"), 1, 1, 0, rrs, [], [])
    assert len(wire) == 12 + 30 + 4 + 49 * (2 + 10 + 4)
    assert len(parse(wire).answer[0]) == 49


def test_oversized_answer_becomes_tc():
    rrs = [RR("db.default.svc.cluster.local", AAAA, 30, f"fd00::{i:x}") for i in range(1, 3000)]
    wire = zone_template(name_labels("db.default.svc.cluster.local"), 28, 1, 0, rrs, [], [])
    m = parse(wire)
    assert m.flags & 0x0200 and not m.answer


def test_invalid_names_never_reach_the_packer():
    st = ClusterState.from_objects([service("default", "bad", type="ExternalName", externalName="a" * 64 + ".test"),
                                    service("default", "ok", type="ExternalName", externalName="ok.test")])
    z = build_zone(st)
    assert "bad.default.svc.cluster.local" not in z.rrsets
    assert z.rrsets["ok.default.svc.cluster.local"][CNAME][0].data == "ok.test"
    for bad in ("", "a..b", "x" * 64 + ".local"):
        with pytest.raises(ValueError, match="zone"):
            ZoneBuilder(origin=bad)
