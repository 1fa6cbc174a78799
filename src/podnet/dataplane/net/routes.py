"""podnet's routes in a netns: list, replace, delete, all tagged with our protocol number.

Every route podnet installs carries `proto ROUTE_PROTO` (api/defaults.py), so listing by
protocol returns exactly ours: the first sync of an agent sweeps whatever is left from a
previous run and nothing else. Values come from calc/routes.py; nothing is decided here.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from podnet.api.defaults import ROUTE_PROTO
from podnet.dataplane.net.links import IpBatch, ip_json


@dataclass(frozen=True, order=True)
class KernelRoute:
    dst: str
    gateway: str
    dev: str


def _canon(dst: str, family: int) -> str:
    if dst == "default":
        return "0.0.0.0/0" if family == 4 else "::/0"
    return str(ipaddress.ip_network(dst, strict=False))


def list_routes(netns: str | None, proto: int = ROUTE_PROTO) -> set[KernelRoute]:
    out: set[KernelRoute] = set()
    for fam, flag in ((4, "-4"), (6, "-6")):
        for r in ip_json(netns, flag, "route", "show", "proto", str(proto)):
            out.add(KernelRoute(_canon(str(r.get("dst", "")), fam), str(r.get("gateway") or ""),
                                str(r.get("dev") or "")))
    return out


def _route_args(r: KernelRoute, proto: int, onlink: bool) -> str:
    # no -4/-6 in a batch line: the destination's family decides
    words = ["route", "replace", r.dst]
    if r.gateway:
        words += ["via", r.gateway]
    if r.dev:
        words += ["dev", r.dev]
    if onlink and r.gateway:
        words.append("onlink")
    return " ".join(words + ["proto", str(proto)])


def sync_routes(netns: str | None, desired: Iterable[KernelRoute], current: set[KernelRoute],
                proto: int = ROUTE_PROTO, onlink_devs: frozenset[str] = frozenset()) -> tuple[int, int]:
    """Make our routes exactly `desired`, given what the kernel has (`current`).

    Returns (replaced, deleted). A route whose dev is in `onlink_devs` is installed with
    `onlink` (a VXLAN gateway is not on any subnet of the device)."""
    want = set(desired)
    # a route wanted without a dev ("the kernel picks") is listed with the dev it picked;
    # never one through an onlink device (VXLAN): the kernel would not pick that, it is a
    # route to change (CrossSubnet: the peer turned out to share our subnet)
    current = {KernelRoute(c.dst, c.gateway, "") if c.dev not in onlink_devs and
               KernelRoute(c.dst, c.gateway, "") in want else c for c in current}
    wanted_dsts = {r.dst for r in want}
    b = IpBatch(netns)
    for r in sorted(want - current):
        b.add(_route_args(r, proto, r.dev in onlink_devs))
    replaced = len(b)
    deleted = 0
    for r in sorted(current - want):
        if r.dst in wanted_dsts:
            continue  # replaced above
        b.add(f"route del {r.dst} proto {proto}")
        deleted += 1
    b.run(force=True)
    return replaced, deleted
