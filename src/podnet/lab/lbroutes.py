"""The lab router learns where load-balancer addresses live (issue 16 §2): one route per
address in the router namespace, to the nodes, as a router learns it from MetalLB or
Calico by BGP (podnet does not speak BGP yet, so the lab's kubelet installs it).

externalTrafficPolicy Cluster: every node is a next hop (ECMP; each node load-balances to
every endpoint). Local: only nodes with a ready endpoint of the Service (a node without
one would drop the traffic), and no route while there is none. Routes carry protocol
`PROTO` so a pass replaces and removes only its own. The outside world gets a route for
the address to the router (as the internet routes a public address to its owner). Pure `desired_routes`; `sync` runs
`ip` in the router namespace.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import threading
from typing import Callable, Iterable

from podnet.api.objects import EndpointSlice, Resource, Service
from podnet.controllers.loadbalancer import is_ours
from podnet.dataplane.net.netns import CommandError, run
from podnet.datastore.interface import Datastore, DatastoreError, open_datastore
from podnet.lab.topology import LabSpec

log = logging.getLogger("podnet.lab.lbroutes")
PROTO = "199"  # rt_protos: an unassigned number, podnet's load-balancer routes


def desired_routes(spec: LabSpec, services: Iterable[Resource],
                   slices: Iterable[Resource]) -> dict[str, tuple[str, ...]]:
    """address/len -> next hops (node underlay addresses of its family), sorted."""
    ready_nodes: dict[tuple[str, str], set[str]] = {}
    for s in slices:
        if isinstance(s, EndpointSlice) and s.service_name:
            for ep in s.endpoints:
                if ep.ready and ep.node_name:
                    ready_nodes.setdefault((s.namespace, s.service_name), set()).add(ep.node_name)
    out: dict[str, tuple[str, ...]] = {}
    for svc in services:
        if not isinstance(svc, Service) or not is_ours(svc):
            continue
        local = svc.external_traffic_policy == "Local"
        names = ready_nodes.get((svc.namespace, svc.name), set())
        for ip in svc.load_balancer_ips:
            try:
                a = ipaddress.ip_address(ip)
            except ValueError:
                continue
            hops = tuple(sorted(h for n in spec.nodes if (not local or n.name in names)
                                for h in ([n.ip4] if a.version == 4 else [n.ip6] if n.ip6 else [])))
            if hops:
                out[f"{a}/{a.max_prefixlen}"] = hops
    return out


def _route_argv(dst: str, hops: tuple[str, ...]) -> list[str]:
    fam = "-6" if ":" in dst else "-4"
    via = ["via", hops[0]] if len(hops) == 1 else [w for h in hops for w in ("nexthop", "via", h)]
    return ["ip", fam, "route", "replace", dst, "proto", PROTO, *via]


def installed(netns: str) -> set[str]:
    out: set[str] = set()
    for fam in ("-4", "-6"):
        cp = run(netns, ["ip", "-j", fam, "route", "show", "proto", PROTO], check=False)
        if cp.returncode == 0 and cp.stdout.strip():
            for r in json.loads(cp.stdout):
                d = str(r.get("dst", ""))
                out.add(d if "/" in d else f"{d}/{128 if ':' in d else 32}")
    return out


def sync(spec: LabSpec, store: Datastore, last: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """One pass: what the router should know, applied where it differs from `last` (and
    from what the router holds, at the first pass)."""
    services = [s for s in store.list("Service").items if isinstance(s, Service) and is_ours(s)]
    # most labs have no load balancer: no EndpointSlice list then
    slices = store.list("EndpointSlice").items if any(s.load_balancer_ips for s in services) else []
    want = desired_routes(spec, services, slices)
    netns, out = spec.router_netns, spec.outside_netns
    have = set(last) if last else installed(netns) | installed(out)
    for dst, hops in sorted(want.items()):
        if last.get(dst) != hops:
            run(netns, _route_argv(dst, hops))
            # the outside world sends it to the router, as the internet would
            gw = spec.router_out6 if ":" in dst else spec.router_out4
            run(out, _route_argv(dst, (gw,)))
    for dst in sorted(have - set(want)):
        for ns in (netns, out):
            run(ns, ["ip", "-6" if ":" in dst else "-4", "route", "del", dst, "proto", PROTO], check=False)
    return want


def run_loop(spec: Callable[[], LabSpec], url: str, stop: threading.Event, every: float = 0.5) -> None:
    """Until `stop`: a pass every `every` seconds (a lab has few Services), over the lab's
    nodes of the moment (`spec()`: nodes come and go)."""
    store = open_datastore(url)
    last: dict[str, tuple[str, ...]] = {}
    try:
        while not stop.is_set():
            try:
                last = sync(spec(), store, last)
            except (DatastoreError, CommandError, OSError) as e:
                log.warning("load-balancer routes: %s (will retry)", e)
                last = {}
            stop.wait(every)
    finally:
        store.close()
