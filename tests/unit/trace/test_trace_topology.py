"""`podnet trace` predicts trafficDistribution: the DNAT node's proxy keeps the endpoints
the EndpointSlice hints give its node or zone (demo state: client and web-5d8f7-a1 on n1;
web-5d8f7-b2, -c3 and worker on n2)."""
from __future__ import annotations

from podnet.api.objects import from_dict
from podnet.calc.model import ClusterState
from podnet.calc.topology import ZONE_LABEL, endpoint_hints
from podnet.trace.path import predict
from podnet.trace.resolve import find_pod, parse_dest, resolve

import trace_demo_state as demo


def hinted(distribution: str, zones: dict[str, str]) -> ClusterState:
    """The demo state with the web Service's trafficDistribution, the nodes' zone labels and
    the hints the EndpointSlice controller writes for them."""
    st = demo.state(traffic={"trafficDistribution": distribution})
    for node in st.nodes:
        if zones.get(node.name):
            st.put(node.with_metadata(labels={ZONE_LABEL: zones[node.name]}))
    for sl in st.endpoint_slices:
        d = sl.to_dict()
        for ep in d["endpoints"]:
            zone = zones.get(ep["nodeName"], "")
            ep.update({"zone": zone} if zone else {})
            ep["hints"] = endpoint_hints(distribution, zone, ep["nodeName"])
        st.put(from_dict(d))
    return st


def run(st: ClusterState, src: str, dst: str = "web"):
    d = parse_dest(dst)
    facts = demo.facts("none")
    pod = find_pod(st, "shop", src)
    return predict(st, facts, pod, resolve(st, pod.namespace, d.text, 4, facts.outside_names), d.port, d.proto, 4)


def test_prefer_same_node_and_zone_in_the_trace():
    node = hinted("PreferSameNode", {"n1": "a", "n2": "b"})
    t = run(node, "client")
    assert [e.pod for e in t.endpoints] == ["shop/web-5d8f7-a1"] and t.request.outcome == "delivered"
    assert any("trafficDistribution PreferSameNode" in n and "node n1 (zone a)" in n and "1 of 3" in n
               for n in t.notes)
    assert {e.node for e in run(node, "batch/worker", "web.shop:80").endpoints} == {"n2"}
    # one zone for both nodes: PreferSameZone keeps all three; the note says so
    zone = run(hinted("PreferSameZone", {"n1": "a", "n2": "a"}), "client")
    assert len(zone.endpoints) == 3 and any("every endpoint" in n for n in zone.notes)
    # PreferClose, the older name of PreferSameZone: zone a (n1) keeps its own endpoint
    assert {e.node for e in run(hinted("PreferClose", {"n1": "a", "n2": "b"}), "client").endpoints} == {"n1"}
