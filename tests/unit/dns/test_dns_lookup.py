"""The Kubernetes DNS schema as a table of questions and expected answers (CoreDNS style)."""
from __future__ import annotations

import pytest

from dns_cluster import cluster, pod, service
from podnet.calc.model import ClusterState
from podnet.dns.lookup import NOERROR, NXDOMAIN, resolve
from podnet.dns.builder import build_zone
from podnet.dns.records import (A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT, dashed,
                                reverse_name)

Z = "cluster.local"
HINFO, MX, ANY = 13, 15, 255


@pytest.fixture(scope="module")
def zone():
    return build_zone(cluster(), serial=7)


def data(ans, rtype=None):
    return sorted(str(rr.data) for rr in ans.answer if rtype is None or rr.rtype == rtype)


# (qname, qtype, rcode, expected answer data sorted, or None for "don't check")
CASES = [
    ("dns-version." + Z, TXT, NOERROR, ["1.1.0"]),
    ("web.default.svc." + Z, A, NOERROR, ["10.96.0.20"]),
    ("web.default.svc." + Z, AAAA, NOERROR, ["fd00:10:96::20"]),
    ("web.other.svc." + Z, A, NOERROR, ["10.96.0.30"]),
    ("v4only.default.svc." + Z, A, NOERROR, ["10.96.0.21"]),
    ("v4only.default.svc." + Z, AAAA, NOERROR, []),       # NODATA
    ("web.default.svc." + Z, MX, NOERROR, []),            # NODATA for other types
    ("web.default.svc." + Z, TXT, NOERROR, []),
    ("_http._tcp.web.default.svc." + Z, SRV, NOERROR, [str((0, 100, 80, "web.default.svc." + Z))]),
    ("_dns._udp.web.default.svc." + Z, SRV, NOERROR, [str((0, 100, 53, "web.default.svc." + Z))]),
    ("_http._udp.web.default.svc." + Z, SRV, NXDOMAIN, []),  # wrong protocol
    ("_http._tcp.web.default.svc." + Z, A, NOERROR, []),     # name exists, no A
    ("_x._y._z.web.default.svc." + Z, A, NXDOMAIN, []),      # too long
    ("nope.default.svc." + Z, A, NXDOMAIN, []),
    ("web.nons.svc." + Z, A, NXDOMAIN, []),
    ("default.svc." + Z, A, NOERROR, []),
    ("quiet.svc." + Z, A, NOERROR, []),
    ("nons.svc." + Z, A, NXDOMAIN, []),
    ("svc." + Z, A, NOERROR, []),
    ("pod." + Z, A, NOERROR, []),
    ("other.pod." + Z, A, NOERROR, []),
    (Z, A, NOERROR, []),
    (Z, NS, NOERROR, ["ns.dns." + Z]),
    ("foo." + Z, A, NXDOMAIN, []),
    ("a.b.c.d.e.f.default.svc." + Z, A, NXDOMAIN, []),
    # headless
    ("db.default.svc." + Z, A, NOERROR, ["10.244.1.5", "10.244.2.6"]),
    ("db.default.svc." + Z, AAAA, NOERROR, ["fd00:10:244::5"]),
    ("db-0.db.default.svc." + Z, A, NOERROR, ["10.244.1.5"]),   # pod hostname+subdomain
    ("db-0.db.default.svc." + Z, AAAA, NOERROR, ["fd00:10:244::5"]),
    ("db-1.db.default.svc." + Z, A, NOERROR, ["10.244.2.6"]),   # endpoint hostname
    ("10-244-3-7.db.default.svc." + Z, A, NXDOMAIN, []),         # not ready
    ("empty.default.svc." + Z, A, NXDOMAIN, []),                 # no ready endpoint
    ("empty.default.svc." + Z, AAAA, NXDOMAIN, []),
    ("lax.default.svc." + Z, A, NOERROR, ["10.244.1.10"]),       # publishNotReadyAddresses
    ("10-244-1-10.lax.default.svc." + Z, A, NOERROR, ["10.244.1.10"]),
    # pods insecure
    ("10-244-9-9.default.pod." + Z, A, NOERROR, ["10.244.9.9"]),
    ("10-244-9-9.default.pod." + Z, AAAA, NOERROR, []),
    ("fd00-10-244--9.default.pod." + Z, AAAA, NOERROR, ["fd00:10:244::9"]),
    ("10-244-9-9.nons.pod." + Z, A, NXDOMAIN, []),
    ("notanip.default.pod." + Z, A, NXDOMAIN, []),
    ("10-244-9-999.default.pod." + Z, A, NXDOMAIN, []),
    # PTR
    (reverse_name("10.96.0.20"), PTR, NOERROR, ["web.default.svc." + Z]),
    (reverse_name("fd00:10:96::20"), PTR, NOERROR, ["web.default.svc." + Z]),
    (reverse_name("10.244.1.5"), PTR, NOERROR, ["db-0.db.default.svc." + Z]),
    (reverse_name("fd00:10:244::5"), PTR, NOERROR, ["db-0.db.default.svc." + Z]),
    (reverse_name("10.96.0.20"), A, NOERROR, []),
    # ExternalName
    ("inner.default.svc." + Z, A, NOERROR, ["10.96.0.20", "web.default.svc." + Z]),
    ("inner.default.svc." + Z, CNAME, NOERROR, ["web.default.svc." + Z]),
    ("web.default.svc." + Z, SOA, NOERROR, []),  # CoreDNS handler_test: SOA below the apex is NODATA
    (Z, SOA, NOERROR, [str(("ns.dns." + Z, "hostmaster." + Z, 7, 7200, 1800, 86400, 30))]),
    (Z, HINFO, NOERROR, []),  # CoreDNS kubernetes_apex_test
]


@pytest.mark.parametrize("qname,qtype,rcode,expected", CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_table(zone, qname, qtype, rcode, expected):
    ans = resolve(zone, qname, qtype)
    assert not ans.forward and not ans.chase
    assert ans.rcode == rcode
    assert data(ans) == sorted(expected)
    if not ans.answer or rcode == NXDOMAIN:
        # every negative answer: one SOA in Authority
        assert [rr.rtype for rr in ans.authority] == [SOA]
    else:
        assert ans.authority == ()


def glued_zone():
    """The test cluster plus the cluster DNS Service, whose addresses are the NS glue."""
    dns = service("kube-system", "kube-dns", clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "fd00:10:96::a"],
                  ipFamilies=["IPv4", "IPv6"], ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    return build_zone(ClusterState.from_objects([o for objs in cluster().objects.values() for o in objs.values()] + [dns]), serial=7)


WEB, DB = "web.default.svc." + Z, "db.default.svc." + Z
# What goes in Additional, from CoreDNS's plugin/kubernetes tests (handler_test.go,
# kubernetes_apex_test.go): only SRV, MX and NS answers carry it.
# (qname, qtype, sorted (owner, type, data) of Additional)
ADDITIONAL_CASES = [
    (Z, NS, [("ns.dns." + Z, A, "10.96.0.10"), ("ns.dns." + Z, AAAA, "fd00:10:96::a")]),
    (Z, SOA, []),
    (Z, HINFO, []),
    (Z, ANY, []),
    ("ns.dns." + Z, A, []),
    (WEB, A, []),
    (WEB, AAAA, []),
    (WEB, SOA, []),
    ("_http._tcp." + WEB, SRV, [(WEB, A, "10.96.0.20"), (WEB, AAAA, "fd00:10:96::20")]),
    ("_http._tcp." + WEB, A, []),
    (DB, A, []),
    ("_pg._tcp." + DB, SRV, [("db-0." + DB, A, "10.244.1.5"), ("db-0." + DB, AAAA, "fd00:10:244::5"),
                             ("db-1." + DB, A, "10.244.2.6")]),
    ("_dns._udp.kube-dns.kube-system.svc." + Z, SRV,
     [("kube-dns.kube-system.svc." + Z, A, "10.96.0.10"), ("kube-dns.kube-system.svc." + Z, AAAA, "fd00:10:96::a")]),
]


@pytest.mark.parametrize("qname,qtype,extra", ADDITIONAL_CASES, ids=[f"{c[0]}/{c[1]}" for c in ADDITIONAL_CASES])
def test_additional_only_for_srv_mx_ns(qname, qtype, extra):
    ans = resolve(glued_zone(), qname, qtype)
    assert ans.rcode == NOERROR
    assert sorted((rr.name, rr.rtype, str(rr.data)) for rr in ans.additional) == sorted(extra)


def test_soa_fields(zone):
    ans = resolve(zone, "nope.default.svc." + Z, A)
    soa = ans.authority[0]
    assert soa.name == Z and soa.ttl == 30
    assert soa.data == ("ns.dns." + Z, "hostmaster." + Z, 7, 7200, 1800, 86400, 30)
    assert resolve(zone, Z, SOA).answer[0].data == soa.data


def test_reverse_soa_owner(zone):
    ans = resolve(zone, reverse_name("10.96.0.20"), A)
    assert ans.authority[0].name == "in-addr.arpa"


def test_srv_additional_has_target_addresses(zone):
    ans = resolve(zone, "_http._tcp.web.default.svc." + Z, SRV)
    assert sorted((rr.name, rr.data) for rr in ans.additional) == [
        ("web.default.svc." + Z, "10.96.0.20"), ("web.default.svc." + Z, "fd00:10:96::20")]


def test_headless_srv_per_endpoint(zone):
    ans = resolve(zone, "_pg._tcp.db.default.svc." + Z, SRV)
    assert sorted(rr.data[2:] for rr in ans.answer) == [
        (15432, "db-0.db.default.svc." + Z),
        (15432, "db-1.db.default.svc." + Z)]
    assert {rr.data[1] for rr in ans.answer} == {50}
    assert sorted(rr.data for rr in ans.additional) == ["10.244.1.5", "10.244.2.6", "fd00:10:244::5"]


def test_unnamed_ports_have_no_srv(zone):
    assert all("9000" not in str(rr.data) for rrs in zone.rrsets.values()
               for rr in rrs.get(SRV, []))


def test_external_name_out_of_zone_is_chased_upstream(zone):
    ans = resolve(zone, "ext.default.svc." + Z, A)
    assert ans.chase == "www.example.test"
    assert [(rr.rtype, rr.data) for rr in ans.answer] == [(CNAME, "www.example.test")]
    assert resolve(zone, "ext.default.svc." + Z, CNAME).answer[0].data == "www.example.test"


def test_cname_loop_stops(zone):
    ans = resolve(zone, "loop1.default.svc." + Z, A)
    assert ans.rcode == NOERROR and len(ans.answer) == 9
    assert all(rr.rtype == CNAME for rr in ans.answer)


def test_out_of_zone_and_unknown_reverse_forward(zone):
    assert resolve(zone, "www.example.test", A).forward
    assert resolve(zone, reverse_name("192.0.2.1"), PTR).forward
    assert resolve(zone, "in-addr.arpa", SOA).forward


def test_any_returns_all_rrsets(zone):
    ans = resolve(zone, "web.default.svc." + Z, ANY)
    assert {rr.rtype for rr in ans.answer} == {A, AAAA}


def test_pods_modes():
    objs = list(cluster().of_kind("Pod")) + list(cluster().of_kind("Namespace"))
    st = ClusterState.from_objects(objs)
    verified = build_zone(st, pods_mode="verified")
    assert data(resolve(verified, "10-244-1-5.default.pod." + Z, A)) == ["10.244.1.5"]
    assert resolve(verified, "10-244-9-9.default.pod." + Z, A).rcode == NXDOMAIN
    assert resolve(verified, "10-244-1-5.other.pod." + Z, A).rcode == NXDOMAIN  # wrong namespace
    disabled = build_zone(st, pods_mode="disabled")
    assert resolve(disabled, "10-244-1-5.default.pod." + Z, A).rcode == NXDOMAIN
    assert resolve(disabled, "default.pod." + Z, A).rcode == NOERROR
    with pytest.raises(ValueError, match="pods mode"):
        build_zone(st, pods_mode="bogus")


def test_zone_and_ttl_configurable():
    z = build_zone(cluster(), origin="Corp.Example.", ttl=5)
    ans = resolve(z, "web.default.svc.corp.example", A)
    assert data(ans) == ["10.96.0.20"] and ans.answer[0].ttl == 5
    assert resolve(z, "web.default.svc.cluster.local", A).forward


def test_namespace_without_object_exists_through_its_services():
    z = build_zone(ClusterState.from_objects([service("kube-system", "kube-dns", clusterIP="10.96.0.10")]))
    assert data(resolve(z, "kube-dns.kube-system.svc." + Z, A)) == ["10.96.0.10"]
    assert resolve(z, "kube-system.svc." + Z, A).rcode == NOERROR


def test_bad_objects_are_skipped():
    st = ClusterState.from_objects([
        service("default", "bad", clusterIP="not-an-ip"),
        service("default", "x" * 70, clusterIP="10.96.0.99"),
        pod("default", "p", ["garbage"]),
        service("default", "ok", clusterIP="10.96.0.98"),
    ])
    z = build_zone(st, pods_mode="verified")
    assert data(resolve(z, "ok.default.svc." + Z, A)) == ["10.96.0.98"]
    assert resolve(z, "bad.default.svc." + Z, A).rcode == NOERROR  # exists, no address
    assert resolve(z, "bad.default.svc." + Z, A).answer == ()


def test_dashed_and_reverse_names():
    assert dashed("10.1.2.3") == "10-1-2-3"
    assert dashed("fd00::1") == "fd00--1"
    assert reverse_name("10.1.2.3") == "3.2.1.10.in-addr.arpa"
    assert reverse_name("fd00::1").endswith(".0.0.d.f.ip6.arpa")
    assert len(reverse_name("fd00::1").split(".")) == 34


def _changes():
    """A sequence of edits, each a function of the state (forward order)."""
    from dns_cluster import endpoint_slice, ep, pod

    def scale_db(st):
        st.put(endpoint_slice("default", "db", [ep("10.244.1.5", pod_name="db-0"), ep("10.244.9.1")],
                              [{"name": "pg", "port": 15432, "protocol": "TCP"}]))

    def rename_pod_host(st):
        st.put(pod("default", "db-0", ["10.244.1.5"], hostname="primary", subdomain="db"))

    def retarget_ext(st):
        st.put(service("default", "ext", type="ExternalName", externalName="other.example.test"))

    def move_web(st):
        st.put(service("default", "web", clusterIP="10.96.0.99", ports=[{"name": "h", "port": 81}]))

    def drop_db(st):
        st.remove("Service", "default", "db")

    def share_ip(st):
        st.put(service("other", "twin", clusterIP="10.96.0.21"))

    def new_namespace(st):
        st.put(service("fresh", "api", clusterIP="None"))
        st.put(endpoint_slice("fresh", "api", [ep("10.244.7.7")], [{"name": "grpc", "port": 9090}]))

    def unsubdomain(st):
        st.put(pod("default", "db-1", ["10.244.2.6"], hostname="db-1"))  # subdomain dropped
        st.remove("EndpointSlice", "default", "lax-a")

    def slice_moves(st):
        st.put(endpoint_slice("default", "empty", [ep("10.244.1.9")], [], suffix="a"))
        moved = endpoint_slice("default", "lax", [ep("10.244.6.6")], [], suffix="x").to_dict()
        moved["metadata"]["name"] = "db-b"  # the IPv6 slice of db now belongs to lax
        from podnet.api.objects import from_dict
        st.put(from_dict(moved))

    return [scale_db, rename_pod_host, retarget_ext, move_web, drop_db, share_ip, new_namespace,
            unsubdomain, slice_moves]


def _changed_keys(before, after):
    keys = set()
    for kind in set(before) | set(after):
        b, a = before.get(kind, {}), after.get(kind, {})
        keys |= {(kind, ns, n) for (ns, n) in set(b) | set(a) if b.get((ns, n)) is not a.get((ns, n))}
    return keys


@pytest.mark.parametrize("order", ["forward", "reversed", "squashed"])
def test_incremental_builder_matches_a_fresh_build(order):
    """Sequences of states (forward, reversed, all at once): the builder that is told
    what changed gives exactly the zone a fresh build gives."""
    from podnet.dns.builder import ZoneBuilder
    changes = _changes() if order != "reversed" else list(reversed(_changes()))
    steps = [changes] if order == "squashed" else [[c] for c in changes]
    st = cluster()
    builder = ZoneBuilder()
    builder.build(st)
    norm = lambda z: {n: {t: sorted(map(repr, rrs)) for t, rrs in s.items()} for n, s in z.rrsets.items()}
    for step in steps:
        before = {k: dict(v) for k, v in st.objects.items()}
        for change in step:
            change(st)
        inc, fresh = builder.build(st, changed=_changed_keys(before, st.objects)), build_zone(st)
        assert norm(inc) == norm(fresh)
        assert {k: sorted(map(repr, v)) for k, v in inc.additional.items()} == \
            {k: sorted(map(repr, v)) for k, v in fresh.additional.items()}
        assert inc.namespaces == fresh.namespaces
    assert sorted(data(resolve(builder.build(st, changed=set()), reverse_name("10.96.0.21"), PTR))) == \
        ["twin.other.svc." + Z, "v4only.default.svc." + Z]


def test_incremental_builder_shares_unchanged_parts():
    from podnet.dns.builder import ZoneBuilder
    st = cluster()
    builder = ZoneBuilder()
    z1 = builder.build(st)
    st.put(service("default", "v4only", clusterIP="10.96.0.55"))
    z2 = builder.build(st, changed={("Service", "default", "v4only")})
    assert z2.rrsets["web.default.svc." + Z] is z1.rrsets["web.default.svc." + Z]
    assert z2.rrsets["v4only.default.svc." + Z] is not z1.rrsets["v4only.default.svc." + Z]
    assert data(resolve(z1, "v4only.default.svc." + Z, A)) == ["10.96.0.21"]  # the old zone is intact
