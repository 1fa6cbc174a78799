"""Behaviour of the rendered rules, traced packet by packet (no root), and partial syncs
checked against a model of nft that refuses what the kernel refuses."""
from __future__ import annotations

from collections import Counter

from hypothesis import given, settings, strategies as st

from podnet.calc.services import ServiceTable, build_table
from podnet.dataplane.nft.service_chains import render_entry
from podnet.dataplane.nft.services import render_full, render_partial
from builders import endpoint, make_service, make_slice
from svc_fixture import NODE_IPS, POD_CIDRS, local_table, table
from svc_nftsim import NftModel, canonical, trace

CLIENT = "10.244.9.9"


def loaded(t: ServiceTable | None = None) -> NftModel:
    m = NftModel()
    m.apply(render_full(t or table(), None)[0])
    return m


def test_every_endpoint_is_reachable_and_each_draw_picks_one():
    m = loaded()
    got = Counter(trace(m, CLIENT, "10.96.0.20", "tcp", 80, draw=lambda n, i=i: i % n).ip for i in range(3))
    assert got == {"10.244.1.2": 1, "10.244.1.3": 1, "10.244.2.2": 1}
    v = trace(m, CLIENT, "10.96.0.20", "tcp", 80)
    assert (v.action, v.port, v.masquerade) == ("dnat", 8080, False)


def test_no_endpoints_rejects_on_vip_and_nodeport():
    m = loaded()
    assert trace(m, CLIENT, "10.96.0.23", "tcp", 80).action == "reject"
    assert trace(m, "203.0.113.5", "198.18.0.11", "tcp", 30081).action == "reject"


def test_not_a_service_is_untouched_but_a_clusterip_refuses_other_ports():
    m = loaded()
    assert trace(m, CLIENT, "10.96.0.20", "tcp", 81).action == "reject"
    assert trace(m, CLIENT, "10.96.0.20", "udp", 80).action == "reject"
    assert trace(m, CLIENT, "10.96.0.99", "tcp", 80).action == "none"
    assert trace(m, CLIENT, "198.18.0.11", "tcp", 30082).action == "none"


def test_nodeport_reaches_endpoints_masqueraded():
    m = loaded()
    v = trace(m, "203.0.113.5", "198.18.0.11", "tcp", 30080, draw=lambda n: n - 1)
    assert (v.action, v.ip, v.port, v.masquerade) == ("dnat", "10.244.2.5", 8080, True)
    assert trace(m, "203.0.113.5", NODE_IPS[1], "tcp", 30080).action == "none"  # v4-only service


def test_affinity_sticks_after_first_choice():
    m = loaded()
    aff: dict[str, set[str]] = {}
    first = trace(m, CLIENT, "10.96.0.21", "tcp", 80, draw=lambda n: 1, affinity=aff)
    later = {trace(m, CLIENT, "10.96.0.21", "tcp", 80, draw=lambda n, i=i: i % n, affinity=aff).ip
             for i in range(5)}
    assert later == {first.ip}
    other = {trace(m, "10.244.9.10", "10.96.0.21", "tcp", 80, draw=lambda n: 0, affinity=aff).ip}
    assert other != {first.ip}


def test_hairpin_is_masqueraded_other_clients_not():
    m = loaded()
    v = trace(m, "10.244.1.8", "10.96.0.24", "sctp", 9999)
    assert (v.ip, v.masquerade) == ("10.244.1.8", True)
    assert not trace(m, CLIENT, "10.96.0.24", "sctp", 9999).masquerade


def test_ipv6_vip_and_udp():
    m = loaded()
    assert trace(m, "fd00:10:244:9::9", "fd00:10:96::30", "tcp", 80).ip == "fd00:10:244:1::7"
    assert trace(m, CLIENT, "10.96.0.10", "udp", 53).port == 5353


# ---- traffic policies (this node is node-1) ----------------------------------------------
OUTSIDE = "203.0.113.5"


def _reached(m: NftModel, src: str, dst: str, port: int, n: int = 4) -> set[str]:
    return {trace(m, src, dst, "tcp", port, draw=lambda k, i=i: i % k).ip for i in range(n)}


def test_internal_local_reaches_only_this_nodes_endpoints_and_drops_without_one():
    m = loaded(local_table())
    assert _reached(m, CLIENT, "10.96.1.1", 80) == {"10.244.1.20"}
    assert _reached(m, "fd00:10:244:9::9", "fd00:10:96::30", 80) == {"fd00:10:244:1::26"}
    assert trace(m, CLIENT, "10.96.1.2", "tcp", 80).action == "drop"  # endpoints, none here
    assert trace(m, CLIENT, "10.96.1.3", "tcp", 80).action == "reject"  # no endpoint at all
    assert not trace(m, CLIENT, "10.96.1.1", "tcp", 80).masquerade


def test_external_local_nodeport_keeps_the_source_and_drops_without_a_local_endpoint():
    m = loaded(local_table())
    v = trace(m, OUTSIDE, "198.18.0.11", "tcp", 30090, draw=lambda k: k - 1)
    assert (v.action, v.ip, v.masquerade) == ("dnat", "10.244.1.22", False)
    assert _reached(m, OUTSIDE, "198.18.0.11", 30090) == {"10.244.1.22"}
    assert trace(m, OUTSIDE, "198.18.0.11", "tcp", 30091).action == "drop"
    # the ClusterIP of the same Services still uses every endpoint
    assert _reached(m, CLIENT, "10.96.1.4", 80) == {"10.244.1.22", "10.244.2.22"}
    assert _reached(m, CLIENT, "10.96.1.5", 80) == {"10.244.2.23"}


def test_internal_local_with_a_cluster_nodeport_and_both_local_with_affinity():
    m = loaded(local_table())
    assert _reached(m, CLIENT, "10.96.1.7", 80) == {"10.244.1.25"}
    v = trace(m, OUTSIDE, "198.18.0.11", "tcp", 30093, draw=lambda k: k - 1)
    assert (v.ip, v.masquerade) == ("10.244.2.25", True)  # externalTrafficPolicy Cluster
    aff: dict[str, set[str]] = {}
    first = trace(m, OUTSIDE, "198.18.0.11", "tcp", 30092, draw=lambda k: k - 1, affinity=aff)
    assert (first.ip, first.masquerade) == ("10.244.3.24", False)
    later = {trace(m, OUTSIDE, "198.18.0.11", "tcp", 30092, draw=lambda k: 0, affinity=aff).ip
             for _ in range(3)}
    assert later == {first.ip}
    assert _reached(m, CLIENT, "10.96.1.6", 80) == {"10.244.1.24", "10.244.3.24"}


# ---- partial syncs == full syncs ---------------------------------------------------------
IPS = [f"10.244.{i // 10}.{i % 10 + 2}" for i in range(12)]
svc_state = st.fixed_dictionaries({
    "eps": st.lists(st.sampled_from(IPS), max_size=4, unique=True),
    "nodeport": st.booleans(),
    "affinity": st.booleans(),
    "present": st.booleans(),
    "internal": st.booleans(),
    "external": st.booleans(),
})
states = st.lists(st.fixed_dictionaries({"a": svc_state, "b": svc_state, "c": svc_state}),
                  min_size=2, max_size=5)


def _table(spec, shared_nodeport: bool = False) -> ServiceTable:
    svcs, slices = [], []
    for i, (name, s) in enumerate(sorted(spec.items())):
        if not s["present"]:
            continue

        def mut(d, s=s):
            if s["nodeport"]:
                d["spec"]["type"] = "NodePort"
                d["spec"]["ports"][0]["nodePort"] = 30100 if shared_nodeport else 30100 + i
            if s["affinity"]:
                d["spec"]["sessionAffinity"] = "ClientIP"
            d["spec"]["internalTrafficPolicy"] = "Local" if s["internal"] else "Cluster"
            d["spec"]["externalTrafficPolicy"] = "Local" if s["external"] else "Cluster"
        svcs.append(make_service("default", name, mut, ip=f"10.96.1.{i + 1}"))
        # odd last octets on the other node: the local choice comes and goes
        slices.append(make_slice("default", name, [endpoint(ip, node=f"node-{int(ip[-1]) % 2 + 1}")
                                                   for ip in s["eps"]]))
    return build_table(svcs, slices, ("198.18.0.11",), "node-1", POD_CIDRS)


@settings(max_examples=150, deadline=None)
@given(states)
def test_partial_sequence_ends_where_a_full_sync_would(seq):
    m = NftModel()
    script, rendered = render_full(_table(seq[0]), None)
    m.apply(script)
    for spec in seq[1:]:
        t = _table(spec)
        changed = {k: t.entries.get(k) for k in set(t.entries) | set(rendered.entries)}
        m.apply(render_partial(rendered, changed))  # NftSimError here = kernel would refuse
        fresh = NftModel()
        fresh.apply(render_full(t, None)[0])
        (mc, ms), (fc, fs) = canonical(m), canonical(fresh)
        assert ms == fs | {k: v for k, v in ms.items() if k.startswith("aff")}
        assert mc == fc
        # and a resync from memory is accepted on top of it
        again = NftModel(m.exists, {c: list(r) for c, r in m.chains.items()},
                         {k: dict(v) for k, v in m.sets.items()})
        again.apply(render_full(t, rendered)[0])
        assert canonical(again)[0] == fc


@settings(max_examples=80, deadline=None)
@given(states)
def test_duplicate_nodeports_in_bad_input_never_break_a_transaction(seq):
    m = NftModel()
    script, rendered = render_full(_table(seq[0], True), None)
    m.apply(script)
    for spec in seq[1:]:
        t = _table(spec, True)
        changed = {k: t.entries.get(k) for k in set(t.entries) | set(rendered.entries)}
        m.apply(render_partial(rendered, changed))
        holders = {v for e in t.entries.values() if e.node_port and e.endpoints
                   for s, _, v in render_entry(e, 1).elements if s == "np4"}
        held = m.sets["np4"].get("tcp . 30100")
        assert (held in holders) if holders else held is None


def test_partial_without_changes_is_empty():
    _, rendered = render_full(table(), None)
    t = table()
    assert render_partial(rendered, dict(t.entries)) == ""


def test_local_traffic_reaches_this_nodes_terminating_endpoint_while_cluster_traffic_does_not():
    def m(d):
        d["spec"].update(type="NodePort", externalTrafficPolicy="Local")
        d["spec"]["ports"][0]["nodePort"] = 30095
    svc = make_service("default", "term", m, ip="10.96.1.9")
    sl = make_slice("default", "term", [endpoint("10.244.1.30", ready=False, serving=True, terminating=True),
                                        endpoint("10.244.2.30", node="node-2")])
    m_ = loaded(build_table([svc], [sl], NODE_IPS, "node-1", POD_CIDRS))
    assert _reached(m_, OUTSIDE, "198.18.0.11", 30095) == {"10.244.1.30"}
    assert _reached(m_, CLIENT, "10.96.1.9", 80) == {"10.244.2.30"}
