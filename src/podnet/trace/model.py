"""The values a trace is made of: headers per layer, decisions, hops, paths. Pure data.

A `Trace` is what `podnet trace` prints: the request path hop by hop (and the reply path
for a connection that gets through), every hop listing the decisions the kernel takes
there (route, DNAT, policy verdict, SNAT, encapsulation) and the packet's headers, layer
by layer, as it leaves that hop. Everything is a frozen dataclass so a trace compares,
serialises (`to_json`) and renders deterministically (golden files).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class L2:
    src: str  # a MAC, or a symbolic name like `<eth0 of node n1>` when unknown
    dst: str


@dataclass(frozen=True)
class L3:
    family: int  # 4 | 6
    src: str
    dst: str
    ttl: int  # IPv6: hop limit


@dataclass(frozen=True)
class L4:
    proto: str  # TCP | UDP | SCTP
    sport: int | None  # None: the ephemeral port the socket picks
    dport: int | None


@dataclass(frozen=True)
class Headers:
    l2: L2
    l3: L3
    l4: L4
    outer: "Headers | None" = None  # the VXLAN outer Ethernet/IP/UDP when encapsulated
    vni: int | None = None


@dataclass(frozen=True)
class Step:
    """One decision at a hop. `kind`: route, dnat, undnat, snat, unsnat, policy, encap,
    decap, switch, deliver, drop, reject, ttl. `data` holds the machine-readable part."""
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hop:
    where: str  # "pod shop/client", "node n1", "underlay", "router", "outside"
    kind: str  # pod | node | underlay | router | outside
    name: str  # pod "ns/name", node name, or "" for the shared parts
    netns: str
    iif: str | None
    oif: str | None
    steps: tuple[Step, ...]
    headers: Headers | None  # as the packet leaves (or, at the last hop, as it arrives)

    def step(self, kind: str) -> Step | None:
        return next((s for s in self.steps if s.kind == kind), None)


@dataclass(frozen=True)
class Path:
    direction: str  # request | reply
    hops: tuple[Hop, ...]
    outcome: str  # delivered | dropped | rejected | unreachable
    why: str


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    pod: str  # "ns/name" or ""
    node: str


@dataclass(frozen=True)
class Trace:
    src: str  # "ns/name"
    target: str  # what the user asked for
    family: int
    proto: str
    port: int
    notes: tuple[str, ...]  # how the target was resolved (DNS, Service)
    service: str  # "ns/name port" when the target is a Service, else ""
    endpoints: tuple[Endpoint, ...]  # what the service proxy may choose from
    chosen: Endpoint | None  # the endpoint the path follows
    verdict: str  # "allowed" | "denied" | "n/a"
    verdict_reason: str
    request: Path
    reply: Path | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
