"""Properties of every predicted path of the demo, whatever the source, destination,
family, encapsulation and policies: it ends where calc says, TTL only goes down, the
source IP survives between pods, the verdict is calc's, the JSON is stable."""
from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

import trace_demo_state as demo
from podnet.calc.policy.predicate import allowed
from podnet.trace import render
from podnet.trace.path import predict
from podnet.trace.resolve import family_ip, resolve

POLICY_SETS = [(), ("40-deny-web.yaml",), ("40-deny-web.yaml", "50-allow-client.yaml")]
STATES = {(p, nat): demo.state(p, nat) for p in POLICY_SETS for nat in (True, False)}
PODS = [("shop", n) for n, ns, *_ in demo.PODS if ns == "shop"] + [("batch", "worker")]
DSTS = [f"{ns}/{n}" for ns, n in PODS] + ["web.shop", "203.0.113.10", "198.18.0.12"]


@settings(max_examples=150, deadline=None)
@given(src=st.sampled_from(PODS), dst=st.sampled_from(DSTS), fam=st.sampled_from([4, 6]),
       encap=st.sampled_from(["none", "vxlan"]), pols=st.sampled_from(POLICY_SETS),
       nat=st.booleans(), ep=st.integers(0, 2))
def test_paths(src, dst, fam, encap, pols, nat, ep):
    state = STATES[(pols, nat)]
    pod = state.get("Pod", *src)
    if dst == "198.18.0.12" and fam == 6:
        dst = "fd00:198:18::12"
    if dst == "203.0.113.10" and fam == 6:
        dst = "fd00:203:113::10"
    target = resolve(state, pod.namespace, dst, fam)
    eps = None
    if target.kind == "service":
        eps = sorted(family_ip(p.pod_ips, fam) for p in state.pods if p.labels.get("app") == "web")[ep]
    t = predict(state, demo.facts(encap), pod, target, None, "TCP", fam, endpoint=eps)
    hops = t.request.hops
    assert hops[0].name == f"{pod.namespace}/{pod.name}"
    final = eps or target.ip
    final_pod = next((p for p in state.pods if final in p.pod_ips), None)
    v = allowed(state, pod, final_pod or final, t.chosen.port if t.chosen else t.port, "TCP", fam)
    assert t.verdict == ("allowed" if v.allowed else "denied")
    if not v.allowed:
        assert t.request.outcome == "dropped" and t.reply is None
    elif final_pod is not None and final_pod.key != pod.key:
        assert t.request.outcome == "delivered" and hops[-1].name == f"{final_pod.namespace}/{final_pod.name}"
        assert t.reply is not None and t.reply.hops[-1].name == hops[0].name
        if not t.chosen or t.chosen.ip != family_ip(pod.pod_ips, fam):  # no hairpin: no NAT between pods
            assert hops[-1].headers.l3.src == family_ip(pod.pod_ips, fam)
    for path in [t.request] + ([t.reply] if t.reply else []):
        ttls = [h.headers.l3.ttl for h in path.hops if h.headers is not None]
        assert ttls == sorted(ttls, reverse=True) and len(path.hops) <= 9
        vx = [h for h in path.hops if h.step("encap")]
        assert bool(vx) <= (encap == "vxlan")
        for h in vx:
            assert h.headers.outer.l4.dport == 4789 and h.headers.outer.l3.family == 4
    assert json.loads(render.to_json(t)) == json.loads(render.to_json(t))
