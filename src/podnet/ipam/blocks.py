"""IPAM blocks as values: which addresses of a block are taken, by whom. Pure.

A block is a slice of an IPPool (default /26, /122) that one node owns (its affinity).
Each allocation maps an ordinal (offset in the block) to a handle that names its owner:
`<node>/<network>/<containerID>/<ifname>`, so DEL releases exactly what ADD took and GC
can tell which allocations belong to which node and network. Blocks are stored as
internal objects of kind IPAMBlock; `to_resource`/`from_resource` are the only codec.

Quarantine (issue 17 §1): a released address is not handed out again for QUARANTINE
seconds while the block has any other free address. Between CNI DEL and the moment every
node has dropped the old endpoint (the pod object is deleted after its sandbox; the
EndpointSlice controller and each agent follow), a node may still send a flow to the
old address; it must find nothing there, never a different pod. The block remembers when
each recently freed ordinal was released (`spec.released`); when only quarantined
addresses are left, the one released longest ago is used (a full block never refuses).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

from podnet.api.objects import Resource
from podnet.ipam.cidr import Address, Network, address_at, block_name, parse_network

KIND = "IPAMBlock"
QUARANTINE = 30.0  # seconds a released address rests (a few times the endpoint propagation)
API_VERSION = "podnet.io/v1"


@dataclass(frozen=True)
class Handle:
    """Who owns an address: one attachment (container + interface) of one network on one node."""
    node: str
    network: str
    container_id: str
    ifname: str

    def __str__(self) -> str:
        return f"{self.node}/{self.network}/{self.container_id}/{self.ifname}"

    @classmethod
    def parse(cls, text: str) -> "Handle":
        parts = str(text).split("/")
        if len(parts) != 4:
            # A handle written by something else: keep it, it matches no attachment of ours.
            return cls("", "", str(text), "")
        return cls(*parts)


@dataclass(frozen=True)
class Block:
    cidr: Network
    pool: str  # name of the IPPool it was cut from
    node: str  # affine node; "" = no affinity
    allocations: Mapping[int, str] = field(default_factory=dict)  # ordinal -> handle text
    empty_since: float | None = None  # when its last address was released
    revision: int = 0  # store revision it was read at (for compare-and-swap)
    released: Mapping[int, float] = field(default_factory=dict)  # ordinal -> when freed (quarantine)

    @property
    def name(self) -> str:
        return block_name(self.cidr)

    @property
    def size(self) -> int:
        return self.cidr.num_addresses

    def free_ordinals(self, reserved: frozenset[int] = frozenset()) -> Iterator[int]:
        taken = self.allocations
        return (o for o in range(self.size) if o not in taken and o not in reserved)

    def first_free(self, reserved: frozenset[int] = frozenset(), now: float | None = None,
                   quarantine: float = QUARANTINE) -> int | None:
        """The lowest free ordinal not in quarantine at `now` (None: no quarantine); when
        every free one is, the one released longest ago."""
        if now is None or not self.released:
            return next(self.free_ordinals(reserved), None)
        resting: list[int] = []
        for o in self.free_ordinals(reserved):
            t = self.released.get(o)
            if t is None or now - t >= quarantine:
                return o
            resting.append(o)
        return min(resting, key=lambda o: (self.released[o], o)) if resting else None

    def free_count(self, reserved: frozenset[int] = frozenset()) -> int:
        return self.size - len(self.allocations) - len(reserved - set(self.allocations))

    def allocate(self, ordinal: int, handle: str) -> "Block":
        if ordinal in self.allocations:
            raise ValueError(f"{address_at(self.cidr, ordinal)} in block {self.cidr} is taken")
        allocs = dict(self.allocations)
        allocs[ordinal] = handle
        released = {o: t for o, t in self.released.items() if o != ordinal}
        return replace(self, allocations=allocs, empty_since=None, released=released)

    def release(self, match: Callable[[str], bool], now: float,
                quarantine: float = QUARANTINE) -> tuple["Block", list[Address]]:
        """A copy without the allocations whose handle matches (their ordinals enter
        quarantine; ones whose quarantine is over are forgotten), and the freed addresses."""
        freed = [o for o, h in self.allocations.items() if match(h)]
        if not freed:
            return self, []
        allocs = {o: h for o, h in self.allocations.items() if o not in freed}
        empty_since = None if allocs else (self.empty_since or now)
        released = {o: t for o, t in self.released.items() if now - t < quarantine}
        released.update({o: now for o in freed})
        return (replace(self, allocations=allocs, empty_since=empty_since, released=released),
                [address_at(self.cidr, o) for o in sorted(freed)])

    def addresses_of(self, match: Callable[[str], bool]) -> list[Address]:
        return [address_at(self.cidr, o) for o, h in sorted(self.allocations.items()) if match(h)]

    # ---- codec ------------------------------------------------------------------------
    def to_resource(self) -> Resource:
        md: dict[str, Any] = {"name": self.name}
        if self.revision:
            md["resourceVersion"] = str(self.revision)
        return Resource({
            "apiVersion": API_VERSION, "kind": KIND, "metadata": md,
            "spec": {
                "cidr": str(self.cidr), "pool": self.pool,
                "affinity": f"host:{self.node}" if self.node else None,
                "allocations": {str(o): h for o, h in sorted(self.allocations.items())},
                "emptySince": self.empty_since,
                **({"released": {str(o): t for o, t in sorted(self.released.items())}}
                   if self.released else {}),
            },
        })

    @classmethod
    def from_resource(cls, res: Resource) -> "Block":
        spec = res.spec
        aff = str(spec.get("affinity") or "")
        node = aff[5:] if aff.startswith("host:") else ""
        allocs = {int(o): str(h) for o, h in (spec.get("allocations") or {}).items()}
        es = spec.get("emptySince")
        released = {int(o): float(t) for o, t in (spec.get("released") or {}).items()}
        return cls(parse_network(str(spec.get("cidr", "")), f"IPAMBlock {res.name}: spec.cidr"),
                   str(spec.get("pool") or ""), node, allocs,
                   float(es) if es is not None else None, res.resource_version, released)


def new_block(cidr: Network, pool: str, node: str) -> Block:
    return Block(cidr, pool, node, {}, None, 0)
