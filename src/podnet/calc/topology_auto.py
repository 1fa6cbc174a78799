"""`service.kubernetes.io/topology-mode: Auto`: zone hints balanced by CPU, as the
EndpointSlice controller's topology cache (k8s.io/endpointslice/topologycache) writes
them. Pure; imports podnet.api only.

- Nodes: every node that is Ready and not a control-plane node counts; if one of them
  lacks a zone label or allocatable CPU, or fewer than two zones remain, there is
  "insufficient node information" and no hints at all. Otherwise each zone's share is its
  allocatable CPU over the total.
- Per address type, over the Service's ready endpoints (n of them): a zone should get
  `share * n` endpoints, at least `ceil(share * n / 1.2)` (an endpoint may carry at most
  20% more than its share). Fewer endpoints than zones, or minimums that add up to more
  than n: no hints.
- Every ready endpoint is first hinted for its own zone (one without a zone: no hints);
  zones holding more than they should then give endpoints, in slice order, to zones
  holding fewer, while at least half an endpoint is owed both ways (and a whole one on
  one side).
Upstream walks Go maps (random order) where zones tie; here zones are taken in name order,
so the same input always gives the same hints. The annotation wins over
spec.trafficDistribution, as upstream (the field applies only without it).
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, NamedTuple

from podnet.api.objects import Node

TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"  # the older name
OVERLOAD_THRESHOLD = 0.2
EXCLUDED_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
ZONE_LABEL = "topology.kubernetes.io/zone"

INSUFFICIENT_NODE_INFO = ("Insufficient Node information: allocatable CPU or zone not specified "
                          "on one or more nodes")
ONE_ZONE_ONLY = "Nodes only ready in one zone"
TOO_FEW_ENDPOINTS = "Insufficient number of endpoints"
OVERLOADED = ("Unable to allocate minimum required endpoints to each zone without exceeding "
              "overload threshold")
NO_ZONE = "One or more endpoints do not have a zone specified"


def hints_enabled(annotations: Mapping[str, Any]) -> bool:
    """The Service asks for Auto hints (the older annotation, when present, decides)."""
    val = annotations.get(TOPOLOGY_AWARE_HINTS)
    if val is None:
        val = annotations.get(TOPOLOGY_MODE)
    return val in ("Auto", "auto")


class NodeFacts(NamedTuple):
    """What the topology cache reads from a Node."""
    zone: str
    cpu_milli: int
    ready: bool
    excluded: bool


_CPU = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G)?$")
_SCALE = {None: 1000, "m": 1, "k": 10**6, "M": 10**9, "G": 10**12}


def cpu_milli(quantity: Any) -> int:
    """A CPU quantity ("2", "1500m", "0.5") in millicores; 0 when absent or unreadable."""
    m = _CPU.match(str(quantity if quantity is not None else "").strip())
    if not m:
        return 0
    return int(math.ceil(float(m.group(1)) * _SCALE[m.group(2)]))


def node_facts(node: Node) -> NodeFacts:
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in node.status.get("conditions") or [] if isinstance(c, Mapping))
    cpu = (node.status.get("allocatable") or {}).get("cpu")
    return NodeFacts(node.labels.get(ZONE_LABEL) or "", cpu_milli(cpu), ready,
                     any(k in node.labels for k in EXCLUDED_LABELS))


def zone_ratios(nodes: Iterable[NodeFacts]) -> dict[str, float] | str:
    """Each zone's share of the allocatable CPU of the ready, non-control-plane nodes, or
    the reason there are none."""
    cpu: dict[str, int] = {}
    for n in nodes:
        if n.excluded or not n.ready:
            continue
        if not n.zone or n.cpu_milli <= 0:
            return INSUFFICIENT_NODE_INFO
        cpu[n.zone] = cpu.get(n.zone, 0) + n.cpu_milli
    if not cpu:
        return INSUFFICIENT_NODE_INFO
    if len(cpu) < 2:
        return ONE_ZONE_ONLY
    total = sum(cpu.values())
    return {z: c / total for z, c in sorted(cpu.items())}


class Allocation(NamedTuple):
    minimum: int
    maximum: int
    desired: float


def allocations(ratios: Mapping[str, float], n: int) -> dict[str, Allocation] | str:
    """How many of `n` ready endpoints each zone should get, or why hints are off."""
    if len(ratios) > n:
        return f"{TOO_FEW_ENDPOINTS} ({n} endpoints, {len(ratios)} zones)"
    mins: dict[str, tuple[int, float]] = {}
    for zone, ratio in sorted(ratios.items()):
        desired = ratio * n
        minimum = int(math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD))))
        mins[zone] = (minimum, max(desired, float(minimum)))
    total = sum(m for m, _ in mins.values())
    if total > n:
        return f"{OVERLOADED} ({n} endpoints, {len(ratios)} zones)"
    return {z: Allocation(m, m + n - total, d) for z, (m, d) in mins.items()}


def _most(owed: Mapping[str, float]) -> tuple[str, float]:
    zone, most = "", 0.0
    for z, v in sorted(owed.items()):
        if v > most:
            zone, most = z, v
    return zone, most


def transfers(alloc: Mapping[str, Allocation], held: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(endpoints each zone gives, endpoints each zone receives), in whole endpoints."""
    give_f: dict[str, float] = {}
    take_f: dict[str, float] = {}
    for zone, a in sorted(alloc.items()):
        have = held.get(zone, 0)
        if have > a.desired:
            give_f[zone] = have - a.desired
        elif have < a.desired:
            take_f[zone] = a.desired - have
    give: dict[str, int] = {}
    take: dict[str, int] = {}
    while True:
        gz, g = _most(give_f)
        tz, t = _most(take_f)
        if not gz or not tz or (g < 1.0 and t < 1.0) or g < 0.5 or t < 0.5:
            return give, take
        give[gz] = give.get(gz, 0) + 1
        give_f[gz] -= 1
        take[tz] = take.get(tz, 0) + 1
        take_f[tz] -= 1


def _ready(ep: Mapping[str, Any]) -> bool:
    return bool((ep.get("conditions") or {}).get("ready"))


def assign_hints(endpoints: list[dict[str, Any]], ratios: Mapping[str, float] | str) -> str:
    """Set (or clear) the zone hints of one address type's endpoints, in place, in slice
    order; returns "" when hints were set, else the reason they are off."""
    for ep in endpoints:
        ep.pop("hints", None)
    ready = [ep for ep in endpoints if _ready(ep)]
    if isinstance(ratios, str):
        return ratios
    alloc = allocations(ratios, len(ready))
    if isinstance(alloc, str):
        return alloc
    if any(not ep.get("zone") for ep in ready):
        return NO_ZONE
    held: dict[str, int] = {}
    hinted: list[tuple[dict[str, Any], str]] = []
    for ep in ready:
        held[ep["zone"]] = held.get(ep["zone"], 0) + 1
        hinted.append((ep, ep["zone"]))
    give, take = transfers(alloc, held)
    for i, (ep, zone) in enumerate(hinted):
        if not give or not take:
            break
        if give.get(zone, 0) > 0:
            to = next(z for z in sorted(take) if take[z] > 0)
            hinted[i] = (ep, to)
            for owed, z in ((give, zone), (take, to)):
                owed[z] -= 1
                if not owed[z]:
                    del owed[z]
    for ep, zone in hinted:
        ep["hints"] = {"forZones": [{"name": zone}]}
    return ""
