"""topology-mode: Auto — the EndpointSlice controller's CPU-balanced zone hints. The
specification is k8s.io/endpointslice's topologycache tests (TestAddHints, TestSetNodes),
in our own fixtures; hypothesis checks what must hold for any input."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.api.objects import Node, from_dict
from podnet.calc.endpointslices import desired_slices
from podnet.calc.topology_auto import (INSUFFICIENT_NODE_INFO, NO_ZONE, ONE_ZONE_ONLY, OVERLOADED,
                                       TOO_FEW_ENDPOINTS, NodeFacts, allocations, assign_hints,
                                       cpu_milli, hints_enabled, node_facts, zone_ratios)
from builders import make_pod, make_service


def ep(ip: str, zone: str | None, ready: bool | None = True) -> dict[str, Any]:
    d: dict[str, Any] = {"addresses": [ip]}
    if ready is not None:
        d["conditions"] = {"ready": ready}
    if zone is not None:
        d["zone"] = zone
    return d


def hints(eps: list[dict[str, Any]]) -> list[str | None]:
    return [e["hints"]["forZones"][0]["name"] if "hints" in e else None for e in eps]


# ---- AddHints: (name, zone ratios or reason, endpoints, hints wanted or reason) ----------
ADD_HINTS = [
    ("no endpoints, no zone ratios", INSUFFICIENT_NODE_INFO, [], INSUFFICIENT_NODE_INFO),
    ("one endpoint, no zone ratios", INSUFFICIENT_NODE_INFO, [ep("10.1.2.3", "zone-a")],
     INSUFFICIENT_NODE_INFO),
    ("2 endpoints, ratios require 3", {"zone-a": 0.3, "zone-b": 0.4, "zone-c": 0.3},
     [ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b")], TOO_FEW_ENDPOINTS),
    ("2 endpoints, ratios require only 2", {"zone-a": 0.45, "zone-b": 0.55},
     [ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b")], ["zone-a", "zone-b"]),
    ("2 ready, 1 unready, 1 unknown", {"zone-a": 0.45, "zone-b": 0.55},
     [ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"), ep("10.1.2.5", "zone-b", False),
      ep("10.1.2.6", "zone-b", None)], ["zone-a", "zone-b", None, None]),
    # upstream's ToCreate slices, then its ToUpdate ones, in that order
    ("within the 3-zone threshold: zone-a gives its first endpoint to zone-b",
     {"zone-a": 0.35, "zone-b": 0.35, "zone-c": 0.30},
     [ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b"),
      ep("10.1.3.3", "zone-c"), ep("10.1.3.4", "zone-c"), ep("10.1.3.4", "zone-a"),
      ep("10.2.2.3", "zone-a"), ep("10.2.2.4", "zone-a"),
      ep("10.2.3.3", "zone-b"), ep("10.2.3.4", "zone-c"), ep("10.2.3.4", "zone-a")],
     ["zone-b", "zone-b", "zone-c", "zone-c", "zone-a", "zone-a", "zone-a", "zone-b", "zone-c", "zone-a"]),
    ("an endpoint without a zone turns hints off", {"zone-a": 0.5, "zone-b": 0.5},
     [ep("10.1.2.3", "zone-a"), ep("10.1.2.4", None)], NO_ZONE),
    ("minimums above the endpoints: overloaded", {"zone-a": 0.9, "zone-b": 0.1},
     [ep("10.1.2.3", "zone-a"), ep("10.1.2.4", "zone-b")], OVERLOADED),
]


@pytest.mark.parametrize("name,ratios,eps,want", ADD_HINTS, ids=[c[0] for c in ADD_HINTS])
def test_add_hints(name, ratios, eps, want):
    eps = [dict(e, hints={"forZones": [{"name": "stale"}]}) for e in eps]  # old hints go
    reason = assign_hints(eps, ratios)
    if isinstance(want, str):
        assert reason.startswith(want)
        assert hints(eps) == [None] * len(eps)
    else:
        assert reason == ""
        assert hints(eps) == want


# ---- SetNodes: (name, nodes as (zone, cpu, ready, control-plane), ratios or reason) ------
def node(zone: str, cpu: str, ready: bool = True, control_plane: bool = False) -> NodeFacts:
    return NodeFacts(zone, cpu_milli(cpu), ready, control_plane)


SET_NODES = [
    ("empty", [], INSUFFICIENT_NODE_INFO),
    ("single node", [node("zone-a", "1000m")], ONE_ZONE_ONLY),
    ("single zone", [node("zone-a", "1000m"), node("zone-a", "1000m")], ONE_ZONE_ONLY),
    ("2 zones", [node("zone-a", "1000m"), node("zone-b", "1000m")], {"zone-a": 0.5, "zone-b": 0.5}),
    ("2 zones, unready node in 1", [node("zone-a", "1000m", ready=False), node("zone-b", "1000m")],
     ONE_ZONE_ONLY),
    ("2 zones, control plane in 1", [node("zone-a", "1000m"), node("zone-b", "1000m", control_plane=True)],
     ONE_ZONE_ONLY),
    ("2 zones, unready node in 1, ready in 2",
     [node("zone-a", "1000m"), node("zone-b", "1000m"), node("zone-b", "1000m", ready=False)],
     {"zone-a": 0.5, "zone-b": 0.5}),
    ("2 zones, control plane in 1, ready in 2",
     [node("zone-a", "1000m"), node("zone-b", "1000m"), node("zone-b", "1000m", control_plane=True)],
     {"zone-a": 0.5, "zone-b": 0.5}),
    ("3 zones, 4 nodes in 1, 2 in 1, 1 in 1",
     [node("zone-a", "1000m"), node("zone-a", "1000m"), node("zone-a", "1000m"), node("zone-a", "2000m"),
      node("zone-b", "3000m"), node("zone-b", "1500m"), node("zone-c", "500m")],
     {"zone-a": 0.5, "zone-b": 0.45, "zone-c": 0.05}),
    ("a node without CPU", [node("zone-a", "1"), node("zone-b", "")], INSUFFICIENT_NODE_INFO),
    ("a node without a zone", [node("zone-a", "1"), node("zone-b", "1"), node("", "1")],
     INSUFFICIENT_NODE_INFO),
]


@pytest.mark.parametrize("name,nodes,want", SET_NODES, ids=[c[0] for c in SET_NODES])
def test_set_nodes(name, nodes, want):
    got = zone_ratios(nodes)
    if isinstance(want, str):
        assert got == want
    else:
        assert got == pytest.approx(want)


@pytest.mark.parametrize("q,milli", [("2", 2000), ("1500m", 1500), ("0.5", 500), (".25", 250),
                                     ("1k", 1_000_000), ("", 0), (None, 0), ("two", 0), ("-1", 0)])
def test_cpu_quantities(q, milli):
    assert cpu_milli(q) == milli


def test_node_facts_read_zone_cpu_readiness_and_role():
    n = from_dict({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "a",
                                                         "node-role.kubernetes.io/control-plane": ""}},
                   "status": {"allocatable": {"cpu": "2"},
                              "conditions": [{"type": "Ready", "status": "True"}]}})
    assert isinstance(n, Node)
    assert node_facts(n) == NodeFacts("a", 2000, True, True)


@pytest.mark.parametrize("annotations,on", [
    ({"service.kubernetes.io/topology-mode": "Auto"}, True),
    ({"service.kubernetes.io/topology-mode": "auto"}, True),
    ({"service.kubernetes.io/topology-mode": "PreferZone"}, False),
    ({"service.kubernetes.io/topology-aware-hints": "Auto"}, True),
    # the older annotation, when present, decides
    ({"service.kubernetes.io/topology-aware-hints": "Disabled",
      "service.kubernetes.io/topology-mode": "Auto"}, False),
    ({}, False),
])
def test_which_annotation_enables_hints(annotations, on):
    assert hints_enabled(annotations) is on


# ---- properties over any input ------------------------------------------------------------
ZONES = ["a", "b", "c", "d"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(ZONES), st.integers(1, 16), min_size=2),
       st.lists(st.tuples(st.sampled_from(ZONES), st.booleans()), max_size=40))
def test_hints_conserve_endpoints_and_move_only_from_zones_with_too_many(cpus, placed):
    total = sum(cpus.values())
    ratios = {z: c / total for z, c in cpus.items()}
    eps = [ep(f"10.0.0.{i}", z, ready) for i, (z, ready) in enumerate(placed)]
    reason = assign_hints(eps, ratios)
    again = [dict(e) for e in eps]
    assert assign_hints(again, ratios) == reason and hints(again) == hints(eps)  # deterministic
    ready = [e for e in eps if e["conditions"]["ready"]]
    if reason:
        assert hints(eps) == [None] * len(eps)
        return
    assert all("hints" not in e for e in eps if not e["conditions"]["ready"])
    alloc = allocations(ratios, len(ready))
    assert not isinstance(alloc, str)
    zones = set(ratios) | {e["zone"] for e in ready}
    held = {z: sum(1 for e in ready if e["zone"] == z) for z in zones}
    got = {z: sum(1 for h in hints(ready) if h == z) for z in zones}
    assert sum(got.values()) == len(ready)
    for e, h in zip(ready, hints(ready)):
        if e["zone"] not in ratios:  # a zone without ready nodes: its endpoints stay its own
            assert h == e["zone"]
        elif h != e["zone"]:  # moved: from a zone over its share to one under it
            assert held[e["zone"]] > alloc[e["zone"]].desired
            assert held[h] < alloc[h].desired
    for z in ratios:  # a move never overshoots: a giver keeps >= its share - 1, a taker <= share + 1
        assert got[z] >= min(held[z], alloc[z].desired - 1)
        assert got[z] <= max(held[z], alloc[z].desired + 1)


# ---- in desired_slices ------------------------------------------------------------------
def _pods() -> list:
    return [make_pod("default", f"p{i}", [f"10.244.{i}.5"], {"app": "web"}, node=n)
            for i, n in enumerate(["n1", "n2", "n2"], start=1)]


ZONE_OF = {"n1": "a", "n2": "b", "n3": "a"}
RATIOS = {"a": 2 / 3, "b": 1 / 3}  # n1 and n3 in a, n2 in b, equal CPUs


def _svc(annotations: dict[str, str], distribution: str = ""):
    def mut(d: dict[str, Any]) -> None:
        d["metadata"]["annotations"] = annotations
        if distribution:
            d["spec"]["trafficDistribution"] = distribution
    return make_service("default", "web", mut)


def test_auto_hints_rebalance_by_cpu_in_the_slices():
    (sl,) = desired_slices(_svc({"service.kubernetes.io/topology-mode": "Auto"}), _pods(), ZONE_OF, RATIOS)
    # a holds 1 of 3 endpoints but 2/3 of the CPU: b's first endpoint serves zone a
    assert [(e["addresses"][0], e["zone"]) for e in sl["endpoints"]] == \
        [("10.244.1.5", "a"), ("10.244.2.5", "b"), ("10.244.3.5", "b")]
    assert hints(sl["endpoints"]) == ["a", "a", "b"]


def test_auto_wins_over_traffic_distribution_and_only_zone_hints():
    (sl,) = desired_slices(_svc({"service.kubernetes.io/topology-mode": "Auto"}, "PreferSameNode"),
                           _pods(), ZONE_OF, RATIOS)
    assert all(set(e["hints"]) == {"forZones"} for e in sl["endpoints"])


def test_auto_without_node_information_writes_no_hints():
    (sl,) = desired_slices(_svc({"service.kubernetes.io/topology-mode": "Auto"}), _pods(), ZONE_OF)
    assert hints(sl["endpoints"]) == [None, None, None]


def test_without_the_annotation_the_field_decides():
    (sl,) = desired_slices(_svc({}, "PreferSameZone"), _pods(), ZONE_OF, RATIOS)
    assert hints(sl["endpoints"]) == ["a", "b", "b"]
