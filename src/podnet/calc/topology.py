"""Topology-aware routing: spec.trafficDistribution, EndpointSlice hints, and which ready
endpoints one node prefers. Pure; imports podnet.api only.

Two halves, as in Kubernetes:
- the EndpointSlice controller (k8s.io/endpointslice trafficdist) gives every *ready*
  endpoint hints when its Service asks: `PreferSameZone` (and its older name
  `PreferClose`) a `forZones` hint naming the endpoint's zone, `PreferSameNode` that and a
  `forNodes` hint naming its node; an endpoint without a zone (or node) gets no such hint;
  any other value (or none) means no hints at all;
- kube-proxy (pkg/proxy/topology.go) reads only the hints, never the Service field: when
  every ready endpoint has a node hint and one names this node, it uses the endpoints
  hinted for this node; otherwise, when every ready endpoint has a zone hint and one names
  this node's zone (label `topology.kubernetes.io/zone`), those of this zone; otherwise
  all of them. The choice applies to the Cluster endpoints only: a Local traffic policy
  already means "this node's", and the serving-terminating fallback happens only when no
  endpoint is ready anywhere.
"""
from __future__ import annotations

from typing import Any, Hashable, Mapping, NamedTuple, TypeVar

from podnet.api.objects import Node
from podnet.api.services import TRAFFIC_DISTRIBUTIONS

ZONE_LABEL = "topology.kubernetes.io/zone"
PREFER_SAME_ZONE = "PreferSameZone"
PREFER_SAME_NODE = "PreferSameNode"

K = TypeVar("K", bound=Hashable)


class Hints(NamedTuple):
    """An endpoint's hints: the zones and nodes it should be used from."""
    zones: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()


def zone_of(node: Node | None) -> str:
    """The node's zone label ("" without a node or the label)."""
    return (node.labels.get(ZONE_LABEL) or "") if node is not None else ""


def hints_of(raw: Any) -> Hints:
    """An endpoint's `hints` field as sets of names; malformed parts count as absent."""
    if not isinstance(raw, Mapping):
        return Hints()

    def names(key: str) -> frozenset[str]:
        got = raw.get(key)
        if not isinstance(got, list):
            return frozenset()
        return frozenset(str(h["name"]) for h in got if isinstance(h, Mapping) and h.get("name"))
    return Hints(names("forZones"), names("forNodes"))


def endpoint_hints(distribution: str, zone: str, node_name: str) -> dict[str, Any] | None:
    """The hints the EndpointSlice controller writes on a ready endpoint of a Service with
    this trafficDistribution, on a node named `node_name` in `zone`; None: no hints."""
    if distribution not in TRAFFIC_DISTRIBUTIONS:
        return None
    out: dict[str, Any] = {}
    if zone:
        out["forZones"] = [{"name": zone}]
    if node_name and distribution == PREFER_SAME_NODE:
        out["forNodes"] = [{"name": node_name}]
    return out or None


def topology_mode(ready: Mapping[K, Hints], node_name: str, zone: str) -> str:
    """kube-proxy's topologyModeFromHints over the ready endpoints and their hints:
    PreferSameNode, PreferSameZone, or "" (use every ready endpoint)."""
    if not ready:
        return ""
    hints = ready.values()
    if all(h.nodes for h in hints) and any(node_name in h.nodes for h in hints):
        return PREFER_SAME_NODE
    if all(h.zones for h in hints) and any(zone in h.zones for h in hints):
        return PREFER_SAME_ZONE
    return ""


def prefer(ready: Mapping[K, Hints], node_name: str, zone: str) -> list[K]:
    """The ready endpoints this node uses for Cluster traffic (never empty when `ready` is
    not: a mode is chosen only when some endpoint fits it)."""
    mode = topology_mode(ready, node_name, zone)
    if mode == PREFER_SAME_NODE:
        return [k for k, h in ready.items() if node_name in h.nodes]
    if mode == PREFER_SAME_ZONE:
        return [k for k, h in ready.items() if zone in h.zones]
    return list(ready)
