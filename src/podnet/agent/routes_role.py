"""The routes role: this node's routes to every other node's pod blocks, kept exact.

calc/routes.py decides; this role applies the plan: the VXLAN device when a pool may
encapsulate (--encap vxlan or crosssubnet, or a route of the plan needs it), then FDB and
neighbour entries, then routes tagged with podnet's protocol
number. The first apply (and one a minute after, to repair drift) lists the kernel's
routes of our protocol and sweeps what is not wanted; between those it diffs against
what it applied last. No nftables: `nft_fragment` is always empty.
"""
from __future__ import annotations

import logging
import time

from podnet.api.objects import ObjectKey, Resource
from podnet.calc.model import ClusterState
from podnet.calc.routes import (VXLAN_DEV, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI, RoutePlan,
                                plan_routes, vtep_mac)
from podnet.dataplane.net.links import delete_link, ip_json
from podnet.dataplane.net.routes import KernelRoute, list_routes, sync_routes
from podnet.dataplane.net.vxlan import ensure_vxlan, sync_overlay

log = logging.getLogger("podnet.agent.routes")
RELIST_EVERY = 60.0


def underlay_dev_of(netns: str | None, ip: str) -> tuple[str, int]:
    """The device holding `ip`, and its MTU."""
    for link in ip_json(netns, "addr", "show"):
        for a in link.get("addr_info") or []:
            if a.get("local") == ip:
                return str(link["ifname"]), int(link.get("mtu") or 1500)
    raise RuntimeError(f"no interface holds the node address {ip}")


class RoutesRole:
    name = "routes"
    kinds = ("Node", "IPAMBlock", "IPPool")

    def __init__(self, node_name: str, node_ip4: str | None, encap: str = "none",
                 netns: str | None = None, routing: str = "static"):
        self.node_name = node_name
        self.routing = routing  # "bgp": BIRD installs the Never pools' routes, this role the rest
        self.node_ip4 = node_ip4
        self.encap = encap
        self.netns = netns
        self.plan: RoutePlan | None = None
        self._inputs: list[Resource] = []  # the objects self.plan was made from
        self.applied: set[KernelRoute] | None = None  # None: relist the kernel next time
        self.listed_at = 0.0
        self.counts = {"replaced": 0, "deleted": 0}

    @property
    def mac(self) -> str:
        return vtep_mac(self.node_ip4) if self.node_ip4 else ""

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        return ""

    def committed(self, ok: bool) -> None:
        if not ok:
            self.applied = None

    def apply_kernel(self, state: ClusterState) -> None:
        stale = self.applied is None or time.monotonic() - self.listed_at > RELIST_EVERY
        inputs = [*state.of_kind("Node"), *state.of_kind("IPAMBlock"), *state.of_kind("IPPool")]
        if not stale and self.plan is not None and len(inputs) == len(self._inputs) and \
                all(a is b for a, b in zip(inputs, self._inputs)):
            return  # the same Node, block and pool objects as last time: the same plan (a pod's sync)
        plan = plan_routes(self.node_name, state.nodes, state.of_kind("IPAMBlock"), self.encap,
                           state.ippools, self.routing)
        self._inputs = inputs
        if plan == self.plan and not stale:
            return
        try:
            self._apply(plan, stale)
        except Exception:
            self.applied = None  # whatever happened, trust the kernel, not memory, next time
            self.plan = None
            raise
        if plan.unroutable and plan.unroutable != (self.plan.unroutable if self.plan else ()):
            log.warning("no route to %s: vxlanMode Never across subnets needs BGP (the router "
                        "knows no pod block)", ", ".join(f"{r.dst} on {r.node}" for r in plan.unroutable))
        self.plan = plan

    def _apply(self, plan: RoutePlan, relist: bool) -> None:
        overlay = self.encap != "none" or any(r.dev == VXLAN_DEV for r in plan.routes)
        if overlay and self.node_ip4:
            dev, mtu = underlay_dev_of(self.netns, self.node_ip4)
            if ensure_vxlan(self.netns, VXLAN_DEV, VXLAN_VNI, self.node_ip4, dev, self.mac,
                            mtu - VXLAN_OVERHEAD, VXLAN_PORT):
                relist = True  # a new device lost its routes and entries
                log.info("created %s (vni %d, local %s, dev %s)", VXLAN_DEV, VXLAN_VNI,
                         self.node_ip4, dev)
            sync_overlay(self.netns, VXLAN_DEV, [(n.ip, n.mac) for n in plan.neighbours],
                         [(f.mac, f.dst) for f in plan.fdb])
        elif not overlay:
            delete_link(self.netns, VXLAN_DEV)  # no pool encapsulates (any more)
        if relist or self.applied is None:
            current = list_routes(self.netns)
            self.listed_at = time.monotonic()
        else:
            current = self.applied
        desired = {KernelRoute(r.dst, r.gateway, r.dev) for r in plan.routes}
        replaced, deleted = sync_routes(self.netns, desired, current,
                                        onlink_devs=frozenset({VXLAN_DEV}))
        self.counts["replaced"] += replaced
        self.counts["deleted"] += deleted
        if replaced or deleted:
            log.info("routes: %d replaced, %d deleted, %d in all", replaced, deleted, len(desired))
        self.applied = desired
