"""trafficDistribution: which endpoints one node's proxy prefers from the EndpointSlice
hints (kube-proxy's CategorizeEndpoints/topologyModeFromHints, its test table as the
specification, in our own fixtures), and the hints the controller writes."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.calc.endpointslices import desired_slices
from podnet.calc.services import entries_for_service
from podnet.calc.topology import endpoint_hints, hints_of, topology_mode, Hints
from builders import endpoint, make_pod, make_service, make_slice

ME = "node-1"


def ep(ip: str, zones: str = "", nodes: str = "", ready: bool = True, local: bool = False,
       terminating: bool = False, serving: bool | None = None) -> dict[str, Any]:
    """An endpoint on this node (`local`) or another, hinted for the zones/nodes given
    (space-separated; "-" for an endpoint without any hints)."""
    d = endpoint(ip, ready=ready, serving=serving, terminating=terminating,
                 node=ME if local else "node-9")
    hints: dict[str, Any] = {}
    if zones:
        hints["forZones"] = [{"name": z} for z in zones.split()]
    if nodes:
        hints["forNodes"] = [{"name": n} for n in nodes.split()]
    if hints:
        d["hints"] = hints
    return d


def categorize(eps: list[dict[str, Any]], zone: str = "zone-a", itp: str = "Cluster",
               etp: str = "", node_port: bool = False) -> tuple[set[str], set[str]]:
    """(Cluster endpoints, Local endpoints) as node-1's proxy in `zone` sees them."""
    def mut(d: dict[str, Any]) -> None:
        d["spec"]["internalTrafficPolicy"] = itp
        if node_port:
            d["spec"]["type"] = "NodePort"
            d["spec"]["ports"][0]["nodePort"] = 30080
        if etp:
            d["spec"]["externalTrafficPolicy"] = etp
    svc = make_service("default", "web", mut)
    (e,) = entries_for_service(svc, [make_slice("default", "web", eps)], ME, zone)
    return {x.ip for x in e.endpoints}, {x.ip for x in e.local_endpoints}


A, B, C, D = "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"
ABCA = [ep(A, "zone-a"), ep(B, "zone-b"), ep(C, "zone-c"), ep(D, "zone-a")]

# (name, endpoints, node's zone, expected Cluster endpoints): kube-proxy's cases
CLUSTER_CASES = [
    ("zone hints, this zone's endpoints", ABCA, "zone-a", {A, D}),
    ("no zone label on the node: all", [ep(A, "zone-a")], "", {A}),
    ("node in another zone, no endpoint for it: all", [ep(A, "zone-a"), ep(B, "zone-a")], "zone-b", {A, B}),
    ("an unready endpoint of this zone is not used", ABCA[:3] + [ep(D, "zone-a", ready=False)], "zone-a", {A}),
    ("only unready endpoints in this zone: all ready ones",
     [ep(A, "zone-a", ready=False), ep(B, "zone-b"), ep(C, "zone-c"), ep(D, "zone-a", ready=False)],
     "zone-a", {B, C}),
    ("one ready endpoint without hints: all", ABCA[:2] + [ep(C)] + ABCA[3:], "zone-a", {A, B, C, D}),
    ("an unready endpoint without hints does not matter", ABCA[:2] + [ep(C, ready=False)], "zone-a", {A}),
    ("several zones per endpoint: any naming this zone",
     [ep(A, "zone-a zone-b zone-c"), ep(B, "zone-b zone-c"), ep(C, "zone-b zone-d"), ep(D, "zone-c")],
     "zone-c", {A, B, D}),
    ("no ready endpoint: serving-terminating ones, hints or not",
     [ep(A, "zone-a", ready=False, serving=True, terminating=True),
      ep(B, "zone-b", ready=False, serving=True, terminating=True)], "zone-a", {A, B}),
    ("ready ones elsewhere win over terminating ones of this zone",
     [ep(A, "zone-a", ready=False, serving=True, terminating=True), ep(B, "zone-b")], "zone-a", {B}),
    ("PreferSameNode: this node's endpoint",
     [ep(A, "zone-a", ME, local=True), ep(B, "zone-a", "node-2"), ep(C, "zone-b", "node-3")], "zone-a", {A}),
    ("PreferSameNode, none on this node: this zone's",
     [ep(A, "zone-a", "node-2"), ep(B, "zone-a", "node-2"), ep(C, "zone-b", "node-3")], "zone-a", {A, B}),
    ("PreferSameNode, none on this node nor zone: all",
     [ep(A, "zone-b", "node-2"), ep(B, "zone-c", "node-3")], "zone-a", {A, B}),
    ("a ready endpoint lacking its node hint: zone hints decide",
     [ep(A, "zone-a", ME, local=True), ep(B, "zone-a"), ep(C, "zone-b", "node-3")], "zone-a", {A, B}),
    ("node hints without zone hints (a node without a zone label)",
     [ep(A, "", ME, local=True), ep(B, "", "node-2")], "", {A}),
    ("an empty hints object counts as no hints", [ep(A, "zone-a"), {**ep(B), "hints": {}}], "zone-a", {A, B}),
]


@pytest.mark.parametrize("name, eps, zone, want", CLUSTER_CASES, ids=[c[0] for c in CLUSTER_CASES])
def test_cluster_endpoints_follow_hints(name, eps, zone, want):
    assert categorize(eps, zone)[0] == want


def test_local_traffic_policies_ignore_topology():
    # kube-proxy: "externalTrafficPolicy: Local, topology ignored for Local endpoints"
    eps = [ep(A, "zone-a", local=True), ep(B, "zone-b", local=True), ep(C, "zone-c"), ep(D, "zone-a")]
    assert categorize(eps, etp="Local", node_port=True) == ({A, D}, {A, B})
    assert categorize(eps, itp="Local", node_port=True) == ({A, D}, {A, B})
    # "conflicting topology and localness": the Cluster set is the zone's, Local this node's
    eps = [ep(A, "zone-a", local=True), ep(B, "zone-b", local=True), ep(C, "zone-a"), ep(D, "zone-b")]
    assert categorize(eps, etp="Local", node_port=True) == ({A, C}, {A, B})


def test_internal_and_external_paths_carry_the_choice():
    svc = make_service("default", "web", lambda d: d["spec"].update(
        type="NodePort", externalTrafficPolicy="Local", ports=[{"name": "http", "port": 80, "nodePort": 30080}]))
    sl = make_slice("default", "web", [ep(A, "zone-a", local=True), ep(B, "zone-b", local=True), ep(C, "zone-a")])
    (e,) = entries_for_service(svc, [sl], ME, "zone-a")
    assert {x.ip for x in e.internal_endpoints} == {A, C}  # pods to the ClusterIP: the zone's
    assert {x.ip for x in e.external_endpoints} == {A, B}  # outside to the NodePort: this node's
    assert set(e.serving) == {A, B, C}  # every serving endpoint keeps its UDP flows


# ---- properties ----------------------------------------------------------------------
NODES = ["node-1", "node-2", "node-3"]
ZONES = ["zone-a", "zone-b"]
endpoint_st = st.fixed_dictionaries({
    "ready": st.booleans(), "zones": st.none() | st.sets(st.sampled_from(ZONES)),
    "nodes": st.none() | st.sets(st.sampled_from(NODES))})


def _eps(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, s in enumerate(specs):
        d = endpoint(f"10.244.2.{i + 1}", ready=s["ready"], serving=True, terminating=not s["ready"],
                     node=NODES[i % 3])
        hints = {}
        if s["zones"] is not None:
            hints["forZones"] = [{"name": z} for z in sorted(s["zones"])]
        if s["nodes"] is not None:
            hints["forNodes"] = [{"name": n} for n in sorted(s["nodes"])]
        if hints:
            d["hints"] = hints
        out.append(d)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(endpoint_st, min_size=1, max_size=8), st.sampled_from(ZONES + [""]), st.integers(1, 3))
def test_topology_properties(specs, zone, split):
    eps = _eps(specs)
    ready = {e["addresses"][0] for e in eps if e["conditions"]["ready"]}
    svc = make_service("default", "web")
    slices = [make_slice("default", "web", eps[i::split], name=f"web-{i}") for i in range(split)]
    (e,) = entries_for_service(svc, slices, ME, zone)
    chosen = {x.ip for x in e.endpoints}
    if ready:
        assert chosen and chosen <= ready  # a preference, never an outage
    else:
        assert chosen == {e["addresses"][0] for e in eps}  # serving-terminating, all of them
    # the choice is the same however the endpoints are cut into slices
    (whole,) = entries_for_service(svc, [make_slice("default", "web", eps)], ME, zone)
    assert whole.endpoints == e.endpoints
    # a node no hint names (no zone, unknown name) uses every ready endpoint
    (nowhere,) = entries_for_service(svc, slices, "node-0", "")
    assert {x.ip for x in nowhere.endpoints} == (ready or chosen)
    # Local endpoints never depend on hints
    plain = [{k: v for k, v in d.items() if k != "hints"} for d in eps]
    (unhinted,) = entries_for_service(svc, [make_slice("default", "web", plain)], ME, zone)
    assert unhinted.local_endpoints == e.local_endpoints
    if ready and chosen != ready:  # a narrowed choice: every chosen one names this node or zone
        assert all(ME in h.nodes for h in _chosen_hints(eps, chosen)) or \
            all(zone in h.zones for h in _chosen_hints(eps, chosen))


def _chosen_hints(eps: list[dict[str, Any]], chosen: set[str]) -> list[Hints]:
    return [hints_of(e.get("hints")) for e in eps if e["addresses"][0] in chosen]


def test_topology_mode_names():
    assert topology_mode({}, ME, "zone-a") == ""
    both = {"x": Hints(frozenset({"zone-a"}), frozenset({ME}))}
    assert topology_mode(both, ME, "zone-a") == "PreferSameNode"
    assert topology_mode(both, "node-2", "zone-a") == "PreferSameZone"
    assert topology_mode(both, "node-2", "zone-b") == ""
    assert hints_of({"forZones": [{"name": "a"}, "junk", {}], "forNodes": "junk"}) == Hints(frozenset({"a"}))


# ---- the controller's hints -------------------------------------------------------------
def _hinted(distribution: str | None, zones: dict[str, str]) -> list[tuple[str, str | None, Any]]:
    def mut(d: dict[str, Any]) -> None:
        if distribution is not None:
            d["spec"]["trafficDistribution"] = distribution
    pods = [make_pod("default", "p1", ["10.244.1.2"], {"app": "web"}, node="n1"),
            make_pod("default", "p2", ["10.244.2.2"], {"app": "web"}, node="n2"),
            make_pod("default", "p3", ["10.244.3.2"], {"app": "web"}, node="n3", ready=False)]
    (sl,) = desired_slices(make_service("default", "web", mut), pods, zones)
    return [(e["nodeName"], e.get("zone"), e.get("hints")) for e in sl["endpoints"]]


ZONES_OF = {"n1": "a", "n3": "b"}  # n2 has no zone label


@pytest.mark.parametrize("distribution", ["PreferSameZone", "PreferClose"])
def test_controller_zone_hints_on_ready_endpoints(distribution):
    assert _hinted(distribution, ZONES_OF) == [
        ("n1", "a", {"forZones": [{"name": "a"}]}),
        ("n2", None, None),  # no zone, no hint (so kube-proxy uses every endpoint)
        ("n3", "b", None)]  # not ready: no hints


def test_controller_node_hints_for_prefer_same_node():
    assert _hinted("PreferSameNode", ZONES_OF) == [
        ("n1", "a", {"forZones": [{"name": "a"}], "forNodes": [{"name": "n1"}]}),
        ("n2", None, {"forNodes": [{"name": "n2"}]}),
        ("n3", "b", None)]


def test_controller_without_distribution_writes_zones_but_no_hints():
    assert _hinted(None, ZONES_OF) == [("n1", "a", None), ("n2", None, None), ("n3", "b", None)]
    assert endpoint_hints("Nearby", "a", "n1") is None


def test_rendered_rules_draw_only_the_preferred_endpoints():
    from podnet.calc.services import build_table
    from podnet.dataplane.nft.services import render_full
    from svc_nftsim import NftModel, trace
    svc = make_service("default", "web", ip="10.96.0.20")
    sl = make_slice("default", "web", [ep(A, "zone-a"), ep(B, "zone-b"), ep(C, "zone-a")])
    for zone, want in (("zone-a", {A, C}), ("zone-b", {B}), ("zone-c", {A, B, C})):
        m = NftModel()
        m.apply(render_full(build_table([svc], [sl], ["198.18.0.11"], ME, zone=zone), None)[0])
        got = {trace(m, "10.244.9.9", "10.96.0.20", "tcp", 80, draw=lambda n, i=i: i % n).ip for i in range(6)}
        assert got == want
