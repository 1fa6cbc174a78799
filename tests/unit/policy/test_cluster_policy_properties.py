"""Random mixes of ClusterNetworkPolicies and NetworkPolicies: calc's predicate, the
compiled form and the rendered ruleset (run by the tracer) agree on every cell, and every
generated policy passes validation (so the kernel test feeds only what the API admits)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.api.validate import validate_object
from podnet.calc.policy.compile import compile_policies, evaluate
from podnet.calc.policy.predicate import allowed, pod_by_ip
from podnet.dataplane.nft.policy import render
from cluster_fixtures import OUTSIDE_V4, OUTSIDE_V6, node_2, state_of
from cluster_strategies import mixes
from nft_tracer import Tracer


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(mix=mixes(), port=st.sampled_from([80, 81]), protocol=st.sampled_from(["TCP", "UDP"]),
       family=st.sampled_from([4, 6]))
def test_predicate_compiled_and_rendered_agree(mix, port, protocol, family):
    cnps, v1 = mix
    for o in cnps:
        assert validate_object(o) == [], o.raw
    st_ = state_of(cnps + v1 + [node_2()])
    comp = compile_policies(st_)
    tracer = Tracer(render(comp))
    by_ip = pod_by_ip(st_)
    ips = [a for p in st_.pods for a in p.pod_ips if (":" in a) == (family == 6)]
    outside = OUTSIDE_V6 if family == 6 else OUTSIDE_V4
    for s in ips:
        for d in ips + [outside]:
            want = allowed(st_, s, d, port, protocol, family, by_ip).allowed
            assert evaluate(comp, s, d, port, protocol) == want, (s, d)
            assert tracer.allowed(s, d, protocol.lower(), port) == want, (s, d)
