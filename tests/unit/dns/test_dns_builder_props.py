"""The incremental zone builder against a fresh build, over random sequences of edits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from dns_cluster import endpoint_slice, namespace, pod, service
from podnet.api.objects import from_dict
from podnet.calc.model import ClusterState
from podnet.dns.builder import ZoneBuilder, build_zone
from podnet.dns.records import wire_name

NAMESPACES = ["default", "other"]
SERVICES = ["a", "b"]
PODS = ["p0", "p1"]
IPS = ["10.96.0.1", "fd00:10:96::1"]  # few, so PTR names get shared
EP_IPS = ["10.244.0.1", "10.244.0.2", "fd00:10:244::1"]

ns_st = st.sampled_from(["default", "default", "default", "other"])  # mostly together


@st.composite
def a_service(draw):
    ns, name = draw(ns_st), draw(st.sampled_from(SERVICES))
    kind = draw(st.sampled_from(["ClusterIP", "Headless", "Headless", "ExternalName"]))
    ports = [{"name": "http", "port": draw(st.sampled_from([80, 81]))}]
    if kind == "ClusterIP":
        ip = draw(st.sampled_from(IPS))
        return service(ns, name, clusterIP=ip, ports=ports)
    if kind == "Headless":
        return service(ns, name, clusterIP="None", ports=ports,
                       publishNotReadyAddresses=draw(st.booleans()))
    return service(ns, name, type="ExternalName",
                   externalName=draw(st.sampled_from(["x.example.test", f"a.{ns}.svc.cluster.local"])))


@st.composite
def a_slice(draw):
    ns = draw(ns_st)
    eps = []
    for ip in draw(st.lists(st.sampled_from(EP_IPS), max_size=3, unique=True)):
        e = {"addresses": [ip], "conditions": {"ready": draw(st.sampled_from([True, True, False]))},
             "targetRef": {"kind": "Pod", "namespace": ns, "name": draw(st.sampled_from(PODS))}}
        if draw(st.sampled_from([False, False, True])):
            e["hostname"] = draw(st.sampled_from(["h1", "h2"]))
        eps.append(e)
    sl = endpoint_slice(ns, draw(st.sampled_from(SERVICES)), eps,
                        [{"name": "http", "port": draw(st.sampled_from([8080, 8081]))}]).to_dict()
    sl["metadata"]["name"] = draw(st.sampled_from(["s1", "s2"]))  # a slice may change Service
    if any(":" in (e["addresses"][0]) for e in eps):
        sl["addressType"] = "IPv6"
        sl["endpoints"] = [e for e in eps if ":" in e["addresses"][0]]
    return from_dict(sl)


@st.composite
def a_pod(draw):
    spec = {}
    if draw(st.sampled_from([True, True, False])):
        spec["subdomain"] = draw(st.sampled_from(SERVICES))
    if draw(st.sampled_from([True, True, False])):
        spec["hostname"] = draw(st.sampled_from(["web-0", "web-1"]))
    return pod(draw(ns_st), draw(st.sampled_from(PODS)), [draw(st.sampled_from(EP_IPS))], **spec)


op = st.one_of(
    st.tuples(st.just("put"), st.one_of(a_service(), a_service(), a_slice(), a_slice(), a_pod(),
                                        ns_st.map(namespace))),
    st.tuples(st.just("del"), st.tuples(st.sampled_from(["Service", "EndpointSlice", "Pod"]), ns_st,
                                        st.sampled_from(SERVICES + PODS + ["s1", "s2"]))),
)


def _norm(z):
    return ({n: {t: sorted(map(repr, rrs)) for t, rrs in s.items()} for n, s in z.rrsets.items()},
            {k: sorted(map(repr, v)) for k, v in z.additional.items()}, z.namespaces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(op, min_size=2, max_size=8), min_size=2, max_size=8))
def test_incremental_equals_fresh(batches):
    state = ClusterState()
    builder = ZoneBuilder()
    builder.build(state)
    for batch in batches:
        changed = set()
        for kind, arg in batch:
            if kind == "put":
                state.put(arg)
                changed.add((arg.kind, arg.namespace, arg.name))
            else:
                state.remove(*arg)
                changed.add(arg)
        zone = builder.build(state, changed=changed)
        assert _norm(zone) == _norm(build_zone(state))
        # the wire-keyed table the quick path reads: the very same RRset dicts, all names
        assert zone.wire is not None and len(zone.wire) == len(zone.rrsets)
        assert all(zone.wire[wire_name(n)] is sets for n, sets in zone.rrsets.items())
