"""Reading `nft monitor trace` and holding a prediction against it, without root: the
kernel's side is text in the format nft prints (taken from a real lab run)."""
from __future__ import annotations

import trace_demo_state as demo
from podnet.trace.confirm import compare, dns_check, expected_outcome, kernel_endpoint
from podnet.trace.kernel import Observation
from podnet.trace.nftrace import fields, parse
from podnet.trace.path import predict
from podnet.trace.resolve import find_pod, resolve

SPORT = 45000
CLIENT_VETH, WEB_B_VETH = "pnf9776d05f28", "pn5a98d2cad54"
PKT = "ip saddr {s} ip daddr {d} ip dscp cs0 ip ecn not-ect ip ttl {ttl} ip id 1 ip protocol tcp " \
      "ip length 60 tcp sport {sp} tcp dport {dp} tcp flags == syn tcp window 64240"


def line(tid: str, table: str, chain: str, rest: str) -> str:
    return f"trace id {tid} inet {table} {chain} {rest}"


def packet(tid, table, chain, iif, oif, s, d, ttl, sp, dp) -> str:
    o = f' oif "{oif}"' if oif else ""
    return line(tid, table, chain, f'packet: iif "{iif}"{o} ' + PKT.format(s=s, d=d, ttl=ttl, sp=sp, dp=dp))


def node_n1_request(oif: str = "eth0") -> list[str]:
    return [
        packet("aa01", "pntrace7", "pre", CLIENT_VETH, None, "10.244.0.2", "10.96.0.20", 64, SPORT, 80),
        line("aa01", "pntrace7", "pre", f"rule meta l4proto tcp th sport {SPORT} meta nftrace set 1 (verdict continue)"),
        line("aa01", "podnet-svc", "services", "rule ip daddr . meta l4proto . th dport vmap @svc4 (verdict jump svc4-X)"),
        packet("aa01", "podnet-pol", "egress", CLIENT_VETH, oif, "10.244.0.2", "10.244.0.66", 63, SPORT, 8080),
        line("aa01", "podnet-pol", "egress", "policy accept"),
        packet("aa01", "pntrace7", "post", CLIENT_VETH, oif, "10.244.0.2", "10.244.0.66", 63, SPORT, 8080),
    ]


def node_n2(policy: list[str]) -> list[str]:
    return [
        packet("bb01", "pntrace7", "pre", "eth0", None, "10.244.0.2", "10.244.0.66", 63, SPORT, 8080),
        packet("bb01", "podnet-pol", "ingress", "eth0", WEB_B_VETH, "10.244.0.2", "10.244.0.66", 62, SPORT, 8080),
        *[line("bb01", "podnet-pol", c, r) for c, r in policy],
        packet("bb01", "pntrace7", "post", "eth0", WEB_B_VETH, "10.244.0.2", "10.244.0.66", 62, SPORT, 8080),
        # the reply, with a recycled trace id: a new packet all the same
        packet("bb01", "pntrace7", "pre", WEB_B_VETH, None, "10.244.0.66", "10.244.0.2", 64, 8080, SPORT),
        line("bb01", "podnet-pol", "egress", "rule ct state established,related accept (verdict accept)"),
        packet("bb01", "pntrace7", "post", WEB_B_VETH, "eth0", "10.244.0.66", "10.244.0.2", 63, 8080, SPORT),
    ]


def node_n1_reply() -> list[str]:
    return [
        packet("cc01", "pntrace7", "pre", "eth0", None, "10.244.0.66", "10.244.0.2", 63, 8080, SPORT),
        line("cc01", "podnet-pol", "egress", "rule ct state established,related accept (verdict accept)"),
        packet("cc01", "pntrace7", "post", "eth0", CLIENT_VETH, "10.96.0.20", "10.244.0.2", 62, 80, SPORT),
    ]


ROUTES = {  # (netns suffix, dst) -> what `ip -j route get` answers
    ("p000000017a", "10.96.0.20"): {"dst": "10.96.0.20", "gateway": "169.254.1.1", "dev": "eth0"},
    ("n1", "10.244.0.66"): {"dst": "10.244.0.66", "gateway": "198.18.0.12", "dev": "eth0"},
    ("n2", "10.244.0.66"): {"dst": "10.244.0.66", "dev": WEB_B_VETH},
    ("p000000037a", "10.244.0.2"): {"dst": "10.244.0.2", "gateway": "169.254.1.1", "dev": "eth0"},
    ("n2", "10.244.0.2"): {"dst": "10.244.0.2", "gateway": "198.18.0.11", "dev": "eth0"},
    ("n1", "10.244.0.2"): {"dst": "10.244.0.2", "dev": CLIENT_VETH},
}


def route_get(netns, dst, src, iif):
    return ROUTES.get((netns.rsplit("-", 1)[1], dst), {"error": "Network is unreachable"})


def predicted(policies=()):
    st = demo.state(policies)
    client = find_pod(st, "shop", "client")
    return predict(st, demo.facts(), client, resolve(st, "shop", "web", 4), 80, "TCP", 4,
                   endpoint="10.244.0.66", sport=SPORT)


def observe(n1: list[str], n2: list[str], outcome: str = "connected") -> Observation:
    return Observation(SPORT, outcome, {"pn-demo-n1": parse("\n".join(n1)), "pn-demo-n2": parse("\n".join(n2)),
                                        "pn-demo-rt": [], "pn-demo-out": []})


WATCHED = {"pn-demo-n1", "pn-demo-n2", "pn-demo-rt", "pn-demo-out"}


def test_fields_of_a_packet_line():
    f = fields('iif "eth0" oif "pn1" ether saddr 0a:00:00:00:00:01 ether daddr ee:ee:ee:ee:ee:ee '
               'ip6 saddr fd00::1 ip6 daddr fd00::2 ip6 hoplimit 63 udp sport 5 udp dport 53')
    assert f == {"iif": "eth0", "oif": "pn1", "ether saddr": "0a:00:00:00:00:01",
                 "ether daddr": "ee:ee:ee:ee:ee:ee", "saddr": "fd00::1", "daddr": "fd00::2",
                 "ttl": "63", "proto": "UDP", "sport": "5", "dport": "53"}


def test_recycled_trace_ids_are_separate_packets():
    pts = parse("\n".join(node_n2([])))
    assert [p.first["sport"] for p in pts] == [str(SPORT), "8080"]
    assert pts[0].oif == WEB_B_VETH and pts[1].oif == "eth0"
    assert pts[0].policy("ingress") == ("open", "") and pts[1].policy("egress") == ("established", "")


def test_policy_verdicts_read_from_the_chains():
    allow = parse("\n".join(node_n2([("pol/shop/web-allow-client/in",
                                      'rule ip saddr @x tcp dport 8080 counter name "rule/shop/web-allow-client/ingress/0" accept (verdict accept)')])))
    assert allow[0].policy("ingress") == ("allowed", "shop/web-allow-client/ingress/0")
    deny = parse("\n".join(node_n2([("pod/shop/web-5d8f7-b2/in", "rule counter drop (verdict drop)")])))
    assert deny[0].policy("ingress") == ("denied", "pod/shop/web-5d8f7-b2/in") and deny[0].dropped


def test_prediction_and_kernel_agree():
    t = predicted()
    obs = observe(node_n1_request(), node_n2([]) + node_n1_reply()[:0])
    obs.traces["pn-demo-n1"] += parse("\n".join(node_n1_reply()))
    assert kernel_endpoint(t, obs) == "10.244.0.66"
    checks = compare(t, obs, route_get, WATCHED)
    bad = [c.line for c in checks if not c.ok]
    assert not bad, bad
    assert any(c.what == "DNAT to" and c.kernel == "10.244.0.66" for c in checks)


def test_a_difference_is_a_mismatch_line():
    t = predicted()
    obs = observe(node_n1_request(oif="pnvx"), node_n2([]))
    obs.traces["pn-demo-n1"] += parse("\n".join(node_n1_reply()))
    bad = [c.line for c in compare(t, obs, route_get, WATCHED) if not c.ok]
    assert bad == ["MISMATCH: request node n1: leaves by: predicted eth0, kernel pnvx — this is a podnet bug"]


def test_denied_prediction_against_a_kernel_that_lets_it_in():
    t = predicted(("40-deny-web.yaml",))
    assert expected_outcome(t) == {"timeout", "unreachable"}
    obs = observe(node_n1_request(), node_n2([]))
    lines = [c.line for c in compare(t, obs, route_get, WATCHED) if not c.ok]
    assert any("probe" in ln and "kernel connected" in ln for ln in lines)
    assert any("policy ingress: predicted denied, kernel open" in ln for ln in lines)


def test_packet_where_the_path_does_not_go():
    t = predicted()
    obs = observe(node_n1_request(), node_n2([]))
    obs.traces["pn-demo-n1"] += parse("\n".join(node_n1_reply()))
    obs.traces["pn-demo-rt"] = parse(packet("dd01", "pntrace7", "pre", "eth0", None, "10.244.0.2",
                                            "10.244.0.66", 63, SPORT, 8080))
    bad = [c.line for c in compare(t, obs, route_get, WATCHED) if not c.ok]
    assert bad == ["MISMATCH: request netns pn-demo-rt: packet seen: predicted the path does not pass "
                   "here, kernel saw it — this is a podnet bug"]


def test_dns_answer_held_against_the_prediction():
    assert dns_check("web", 4, "10.96.0.20", ["10.96.0.20"]).ok
    bad = dns_check("web", 6, "fd00:10:96::14", [])
    assert not bad.ok and bad.line == ("MISMATCH: DNS in the source pod: web AAAA: predicted fd00:10:96::14, "
                                       "kernel no address — this is a podnet bug")
    assert "timed out" in dns_check("web", 4, "10.96.0.20", ";; connection timed out").kernel
