"""IPAM blocks as values: which addresses of a block are taken, by whom. Pure.

A block is a slice of an IPPool (default /26, /122) that one node owns (its affinity).
Each allocation maps an ordinal (offset in the block) to a handle that names its owner:
`<node>/<network>/<containerID>/<ifname>`, so DEL releases exactly what ADD took and GC
can tell which allocations belong to which node and network. Blocks are stored as
internal objects of kind IPAMBlock; `to_resource`/`from_resource` are the only codec.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

from podnet.api.objects import Resource
from podnet.ipam.cidr import Address, Network, address_at, block_name, parse_network

KIND = "IPAMBlock"
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

    @property
    def name(self) -> str:
        return block_name(self.cidr)

    @property
    def size(self) -> int:
        return self.cidr.num_addresses

    def free_ordinals(self, reserved: frozenset[int] = frozenset()) -> Iterator[int]:
        taken = self.allocations
        return (o for o in range(self.size) if o not in taken and o not in reserved)

    def first_free(self, reserved: frozenset[int] = frozenset()) -> int | None:
        return next(self.free_ordinals(reserved), None)

    def free_count(self, reserved: frozenset[int] = frozenset()) -> int:
        return self.size - len(self.allocations) - len(reserved - set(self.allocations))

    def allocate(self, ordinal: int, handle: str) -> "Block":
        if ordinal in self.allocations:
            raise ValueError(f"{address_at(self.cidr, ordinal)} in block {self.cidr} is taken")
        allocs = dict(self.allocations)
        allocs[ordinal] = handle
        return replace(self, allocations=allocs, empty_since=None)

    def release(self, match: Callable[[str], bool], now: float) -> tuple["Block", list[Address]]:
        """A copy without the allocations whose handle matches, and the freed addresses."""
        freed = [o for o, h in self.allocations.items() if match(h)]
        if not freed:
            return self, []
        allocs = {o: h for o, h in self.allocations.items() if o not in freed}
        empty_since = None if allocs else (self.empty_since or now)
        return (replace(self, allocations=allocs, empty_since=empty_since),
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
            },
        })

    @classmethod
    def from_resource(cls, res: Resource) -> "Block":
        spec = res.spec
        aff = str(spec.get("affinity") or "")
        node = aff[5:] if aff.startswith("host:") else ""
        allocs = {int(o): str(h) for o, h in (spec.get("allocations") or {}).items()}
        es = spec.get("emptySince")
        return cls(parse_network(str(spec.get("cidr", "")), f"IPAMBlock {res.name}: spec.cidr"),
                   str(spec.get("pool") or ""), node, allocs,
                   float(es) if es is not None else None, res.resource_version)


def new_block(cidr: Network, pool: str, node: str) -> Block:
    return Block(cidr, pool, node, {}, None, 0)
