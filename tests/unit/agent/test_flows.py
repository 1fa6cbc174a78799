"""Flow records (issue 18): id mapping, record building from ulogd's JSON, the join of the
log and conntrack sources, the ring's cap and loss count, filters and the merge by time."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from podnet.agent import flow_accounting, flow_query, flows
from podnet.dataplane.nft import flowlog
from podnet.dataplane import ulogd

NAMES = flows.names_of([("x", "a", ["10.244.0.2", "fd00:10:244::2"]), ("x", "b", ["10.244.1.3"]),
                        ("y", "c", ["10.244.1.4"])],
                       [("x", "web", ["10.96.0.20"], [("TCP", 80, "http")])])
CAUSES = flows.causes_of([("x", "allow-a", "ingress", 1)], [("x", "b", "ingress", ("deny-all", "allow-a"))])


def log_ev(prefix: str, src: str, sport: int, dst: str, dport: int, t: float = 1000.0) -> dict:
    """What ulogd's JSON plugin writes for an nflog'd TCP SYN (keys as ulogd 2.0.8 names them)."""
    return {"oob.prefix": prefix, "oob.time.sec": int(t), "oob.time.usec": int(t % 1 * 1e6),
            "ip.protocol": 6, "src_ip": src, "dest_ip": dst, "src_port": sport, "dest_port": dport,
            "tcp.syn": 1, "tcp.ack": 0, "tcp.seq": sport * 1000 + int(t)}


def ct_ev(src: str, sport: int, dst: str, dport: int, rsrc: str, rport: int, rdst: str, t: float = 1000.0) -> dict:
    return {"ct.event": 1, "ct.id": 7, "orig.ip.protocol": 6, "orig.l4.sport": sport, "orig.l4.dport": dport,
            "reply.l4.sport": rport, "reply.l4.dport": sport, "src_ip": src, "dest_ip": dst,
            "reply.ip.saddr.str": rsrc, "reply.ip.daddr.str": rdst,
            "flow.start.sec": int(t), "flow.start.usec": 0}


def test_ids_map_back_to_policy_direction_rule_and_isolation() -> None:
    c = CAUSES[flowlog.allow_id("x", "allow-a", "ingress", 1)]
    assert (c.verdict, c.policy, c.direction, c.index) == ("forwarded", "allow-a", "ingress", 1)
    i = CAUSES[flowlog.isolated_id("x", "b", "ingress")]
    assert (i.verdict, i.reason, i.policies) == ("dropped", "isolated, no rule allowed it", ("deny-all", "allow-a"))
    assert CAUSES[flowlog.NO_ENDPOINTS].verdict == "rejected"
    assert CAUSES[flowlog.SPOOFED].reason == "spoofed"
    # ids fit nflog's prefix and differ for every rule and direction
    ids = {flowlog.allow_id("x", "p" * 253, d, i) for d in ("ingress", "egress") for i in range(50)}
    assert len(ids) == 100 and all(len(f) < 64 for f in ids)


def test_a_drop_names_the_isolating_policies() -> None:
    r = flows.record_from_log(log_ev(flowlog.isolated_id("x", "b", "ingress"), "10.244.0.2", 4000, "10.244.1.3", 80),
                              "n1", CAUSES, NAMES)
    assert r is not None
    assert r["verdict"] == "dropped" and r["direction"] == "ingress"
    assert r["source"] == {"ip": "10.244.0.2", "port": 4000, "pod": "x/a"}
    assert r["destination"]["pod"] == "x/b"
    assert "isolated by deny-all, allow-a" in flow_query.describe(r)


def test_no_endpoints_reject_names_the_service() -> None:
    r = flows.record_from_log(log_ev(flowlog.NO_ENDPOINTS, "10.244.0.2", 4000, "10.96.0.20", 80), "n1", CAUSES, NAMES)
    assert r is not None and r["verdict"] == "rejected" and r["service"] == "x/web:http"


def test_other_prefixes_are_not_ours() -> None:
    assert flows.record_from_log(log_ev("somebody-else", "1.1.1.1", 1, "2.2.2.2", 2), "n1", CAUSES, NAMES) is None


def test_service_connection_joins_log_and_conntrack_in_either_order() -> None:
    allow = log_ev(flowlog.allow_id("x", "allow-a", "ingress", 1), "10.244.0.2", 5000, "10.244.1.3", 8080)
    ct = ct_ev("10.244.0.2", 5000, "10.96.0.20", 80, "10.244.1.3", 8080, "10.244.0.2")
    for order in ((allow, ct), (ct, allow)):
        ring = flows.FlowRing(8)
        for ev in order:
            rec = (flows.record_from_log(ev, "n1", CAUSES, NAMES) if "oob.prefix" in ev
                   else flows.record_from_ct(ev, "n1", NAMES))
            assert rec is not None
            ring.add(rec)
        [r] = list(ring.ring)
        assert r["verdict"] == "forwarded"
        assert r["destination"]["ip"] == "10.96.0.20" and r["service"] == "x/web:http"
        assert r["endpoint"] == {"ip": "10.244.1.3", "port": 8080, "pod": "x/b"}
        assert r["decisions"][0]["policy"] == "allow-a" and r["decisions"][0]["rule"] == 1
        assert ring.by_policy[("x/allow-a", "ingress", "forwarded")] == 1


def test_a_cluster_policy_decision_is_counted_by_its_name() -> None:
    """A ClusterNetworkPolicy has no namespace: its drop used to raise KeyError in the
    counting, which ended the agent's recording thread for good."""
    causes = flows.causes_of([], [], [("Admin", "deny-srv", "ingress", 0, "Deny")])
    ev = log_ev(flowlog.cluster_id("deny-srv", "ingress", 0), "10.244.0.2", 5000, "10.244.1.3", 8080)
    ring = flows.FlowRing(8)
    rec = flows.record_from_log(ev, "n2", causes, NAMES)
    assert rec is not None and rec["verdict"] == "dropped"
    ring.add(rec)
    assert ring.by_policy == {("deny-srv", "ingress", "dropped"): 1}


def test_outside_connection_shows_the_snat_address() -> None:
    r = flows.record_from_ct(ct_ev("10.244.0.2", 5000, "203.0.113.10", 80, "203.0.113.10", 80, "198.18.0.11"),
                             "n1", NAMES)
    assert r is not None and r["snat"] == "198.18.0.11" and r["destination"]["outside"] is True
    assert "outside, SNAT 198.18.0.11" in flow_query.table_line(r)


def test_conntrack_of_strangers_is_not_recorded() -> None:
    assert flows.record_from_ct(ct_ev("198.18.0.1", 1, "198.18.0.2", 2379, "198.18.0.2", 2379, "198.18.0.1"),
                                "n1", NAMES) is None


@settings(max_examples=50, deadline=None)
@given(cap=st.integers(1, 64), n=st.integers(0, 300))
def test_ring_never_exceeds_its_cap_and_counts_what_it_lost(cap: int, n: int) -> None:
    ring = flows.FlowRing(cap)
    for i in range(n):
        ring.add(flows.record_from_log(log_ev(flowlog.SPOOFED, "10.244.0.2", i + 1, "10.244.1.3", 80, 1000 + i),
                                       "n1", CAUSES, NAMES) or {})
    assert len(ring.ring) == min(n, cap)
    assert ring.stats() == {"cap": cap, "stored": min(n, cap), "seen": n, "lost": max(0, n - cap),
                            "overruns": 0, "finished": 0}
    assert ring.by_verdict["dropped"] == n


def _rec(t: float, node: str, verdict: str = "forwarded", **kw: str) -> dict:
    return {"time": t, "node": node, "protocol": "TCP", "verdict": verdict, "decisions": [],
            "source": {"ip": "10.244.0.2", "pod": kw.get("src", "x/a")},
            "destination": {"ip": "10.244.1.3", "port": 80, "pod": kw.get("dst", "x/b")}}


@given(st.lists(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=20), max_size=4))
def test_merge_is_by_time_across_nodes(times: list[list[float]]) -> None:
    streams = [[_rec(t, f"n{i}") for t in random.sample(ts, len(ts))] for i, ts in enumerate(times)]
    out = list(flow_query.merge_by_time(streams))
    assert [r["time"] for r in out] == sorted(t for ts in times for t in ts)


def test_filters() -> None:
    drop = flows.record_from_log(log_ev(flowlog.isolated_id("x", "b", "ingress"), "10.244.0.2", 4000,
                                        "10.244.1.3", 80), "n1", CAUSES, NAMES)
    assert drop is not None
    F = flow_query.Filter
    assert F("x").match(drop) and not F("y").match(drop) and F(None).match(drop)
    assert F("x", pod="b").match(drop) and not F("x", pod="c").match(drop)
    assert F("x", src="a").match(drop) and not F("x", src="b").match(drop)
    assert F("x", dst="10.244.1.3").match(drop) and F("x", port=80).match(drop) and not F("x", port=81).match(drop)
    assert F("x", verdict="dropped").match(drop) and not F("x", verdict="forwarded").match(drop)
    assert F("x", policy="deny-all").match(drop) and not F("x", policy="other").match(drop)


def test_since() -> None:
    assert flow_query.parse_since("5m", 1000.0) == 700.0 and flow_query.parse_since("30", 100.0) == 70.0
    try:
        flow_query.parse_since("five", 0)
    except ValueError:
        pass
    else:
        raise AssertionError("bad duration accepted")


def test_ulogd_config_has_both_stacks_on_our_group() -> None:
    c = ulogd.config("/plugins")
    assert f"group={flowlog.GROUP}" in c and "stack=ct1:NFCT" in c and "event_mask=0x00000005" in c
    assert "stack=ct1" not in ulogd.config("/plugins", conntrack=False)


def test_policy_counts() -> None:
    drop = flows.record_from_log(log_ev(flowlog.isolated_id("x", "b", "ingress"), "10.244.0.2", 1, "10.244.1.3", 80),
                                 "n2", CAUSES, NAMES)
    ok = flows.record_from_log(log_ev(flowlog.allow_id("x", "allow-a", "ingress", 1), "10.244.0.2", 2,
                                      "10.244.1.3", 80), "n2", CAUSES, NAMES)
    recs = [drop, ok, ok]
    assert flow_query.policy_counts(recs, "x", "allow-a") == {"allowed": 2, "ingress rule 1": 2, "denied": 1}
    assert flow_query.policy_counts(recs, "x", "deny-all") == {"denied": 1}
    assert flow_query.policy_counts(recs, "y", "allow-a") == {}


def test_ipv6_and_icmp_events_as_ulogd_writes_them_join_into_one_record() -> None:
    # keys and values as ulogd 2.0.8 wrote them for an ICMPv6 echo request in a netns
    log6 = {"oob.prefix": flowlog.allow_id("x", "allow-a", "ingress", 1), "ip.protocol": 58, "ip6.nexthdr": 58,
            "icmpv6.type": 128, "src_ip": "fd00:10:244::2", "dest_ip": "fd00:10:244:0:0:0:0:9",
            "oob.time.sec": 1000, "oob.time.usec": 0}
    ct6 = {"orig.ip.protocol": 58, "reply.ip.protocol": 58, "ct.event": 1, "src_ip": "fd00:10:244::2",
           "dest_ip": "fd00:10:244::9", "reply.ip.saddr.str": "fd00:10:244::9",
           "reply.ip.daddr.str": "fd00:10:244::2", "flow.start.sec": 1000, "flow.start.usec": 5}
    ring = flows.FlowRing(8)
    a = flows.record_from_log(log6, "n1", CAUSES, NAMES)
    b = flows.record_from_ct(ct6, "n1", NAMES)
    assert a is not None and b is not None
    ring.add(a)
    ring.add(b)
    [r] = list(ring.ring)
    assert r["protocol"] == "ICMPv6" and r["source"] == {"ip": "fd00:10:244::2", "pod": "x/a"}
    assert r["destination"] == {"ip": "fd00:10:244::9"} and "snat" not in r and "endpoint" not in r
    assert r["decisions"][0]["policy"] == "allow-a"


def test_reused_ports_make_a_new_record_but_a_retransmitted_drop_does_not() -> None:
    allow = log_ev(flowlog.allow_id("x", "allow-a", "ingress", 1), "10.244.0.2", 5000, "10.244.1.3", 8080)
    ct = ct_ev("10.244.0.2", 5000, "10.244.1.3", 8080, "10.244.1.3", 8080, "10.244.0.2")
    drop = log_ev(flowlog.isolated_id("x", "b", "ingress"), "10.244.0.2", 6000, "10.244.1.3", 80)
    ring = flows.FlowRing(16)
    retransmit = dict(allow)
    for ev in (allow, ct, retransmit, {**allow, "tcp.seq": 1}, ct, drop, drop):
        rec = (flows.record_from_log(ev, "n1", CAUSES, NAMES) if "oob.prefix" in ev
               else flows.record_from_ct(ev, "n1", NAMES))
        assert rec is not None
        ring.add(rec)
    assert [(r["verdict"], r["sources"]) for r in ring.ring] == [
        ("forwarded", ["conntrack", "log"]), ("forwarded", ["conntrack", "log"]), ("dropped", ["log"])]


def destroy_ev(ct_id: int, start: float, end: float, sent: tuple[int, int], received: tuple[int, int]) -> dict:
    """A DESTROY as ulogd 2.0.8 writes it (keys and numbers from a real one on this kernel)."""
    return {"ct.event": 4, "ct.id": ct_id, "orig.ip.protocol": 6,
            "orig.raw.pktcount": sent[0], "orig.raw.pktlen": sent[1],
            "reply.raw.pktcount": received[0], "reply.raw.pktlen": received[1],
            "flow.start.sec": int(start), "flow.start.usec": int(round(start % 1 * 1e6)),
            "flow.end.sec": int(end), "flow.end.usec": int(round(end % 1 * 1e6))}


def test_a_finished_connection_gets_its_counters_and_comes_again() -> None:
    ring = flows.FlowRing(16)
    rec = flows.record_from_ct(ct_ev("10.244.0.2", 5000, "10.244.1.3", 80, "10.244.1.3", 80, "10.244.0.2"), "n1", NAMES)
    assert rec is not None
    ring.add(rec)
    seq = rec["seq"]
    ct_id, fin = flow_accounting.ending(destroy_ev(7, 1000.0, 1001.25, (5, 318), (5, 418)))
    assert ct_id == 7 and fin == {"packets": {"sent": 5, "received": 5}, "bytes": {"sent": 318, "received": 418},
                                  "ended": 1001.25, "duration": 1.25}
    assert ring.finish(ct_id, fin) is rec and rec["finished"] == fin
    assert ring.since(0, seq) == [rec]  # a follower sees it again, now finished
    assert ring.stats()["finished"] == 1 and ring.stats()["seen"] == 1
    assert "ended after 1.250s, 5/5 packets, 318/418 bytes" in flow_query.table_line(rec)
    assert ring.finish(ct_id, fin) is None  # once only
    assert ring.finish(99, fin) is None  # a stranger's connection (never recorded)


def test_only_destroy_events_end_a_connection() -> None:
    assert flow_accounting.ending(ct_ev("10.244.0.2", 1, "10.244.1.3", 80, "10.244.1.3", 80, "10.244.0.2")) is None
    assert flow_accounting.ending({"ct.event": 4}) is None  # no id: nothing to fold into
    _, fin = flow_accounting.ending({"ct.event": 4, "ct.id": 3})
    assert fin == {"packets": {"sent": 0, "received": 0}, "bytes": {"sent": 0, "received": 0}}
    assert flows.record_from_ct(destroy_ev(7, 1, 2, (1, 60), (0, 0)), "n1", NAMES) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=120))
def test_the_index_of_open_connections_stays_within_the_cap(ids: list[int]) -> None:
    ring = flows.FlowRing(8)
    for n, i in enumerate(ids):
        rec = flows.record_from_ct({**ct_ev("10.244.0.2", 1000 + n, "10.244.1.3", 80, "10.244.1.3", 80, "10.244.0.2",
                                           t=1000.0 + 10 * n), "ct.id": i}, "n1", NAMES)
        assert rec is not None
        ring.add(rec)
        assert len(ring._by_ct) <= 8


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.booleans())
def test_addresses_are_normalised_as_python_writes_them(addr, upper) -> None:
    """norm_ip (inet_pton/ntop, cached) must name every address as `ipaddress` does, or the
    same pod would be two names; anything that is not an address stays as it is."""
    import ipaddress
    text = addr.exploded.upper() if upper else addr.exploded
    assert flows.norm_ip(text) == str(ipaddress.ip_address(text))
    for junk in ("not-an-ip", "", "10.0.0.256", "fd00::g"):
        assert flows.norm_ip(junk) == junk
