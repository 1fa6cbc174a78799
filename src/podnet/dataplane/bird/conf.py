"""BIRD 2 configuration text, rendered from a BgpPlan (calc/bgp.py) or the lab ToR's peers. Pure.

A node's BIRD: its own blocks as blackhole statics (never exported to the kernel: the
pods' /32 and /128 routes, longer, are the node's real routes to them), one BGP session
per peer and family, and three filters that are the whole of podnet's trust in a peer:
- import: from other nodes, only prefixes inside podnet's pools (a peer cannot announce a
  default route, another network, or anything else podnet does not expect); from peers
  outside the cluster (routers), nothing: they own no pod block;
- export: only this node's blocks (to peers outside the cluster: minus pools with
  disableBGPExport, plus the advertised Service ranges); a route reflector also reflects
  what it learned inside the pools;
- kernel: only routes learned over BGP go to the kernel (as `proto bird`), and none inside
  a pool the agent routes itself (VXLAN pools). When a peer is on another subnet (another
  rack), BIRD learns the kernel's default route (only it) to resolve that peer's next hops
  through the rack's router (`gateway recursive`, as Calico's mesh does).
Timers are short (the lab wants routes within seconds; a dead peer is dropped after the
hold time, 9 s). Graceful restart (RFC 4724) is on: a BIRD that restarts (the agent's
restart, or BIRD killed) leaves its kernel routes in place and its peers keep its routes,
marked stale, for GR_TIME seconds while it comes back (`bird -R`); a peer whose session
closes without coming back is withdrawn after GR_TIME, one that goes silent after the hold
time (BIRD does no graceful restart on an expired hold timer).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from podnet.calc.bgp import BgpPlan, Peer

HEADER = "# Rendered by podnet (podnet.dataplane.bird.conf); every change is rewritten.\n"
GR_TIME = 30  # seconds a restarting peer's routes are kept (Calico's default is 120)
GR_WAIT = 10  # seconds a restarted BIRD waits for its peers before trusting its own table
TIMERS = ("    connect delay time 1;\n    connect retry time 2;\n    error wait time 1, 10;\n"
          "    hold time 9;\n    keepalive time 3;\n"
          f"    graceful restart on;\n    graceful restart time {GR_TIME};\n")


def _set(prefixes: Iterable[str]) -> str:
    """A BIRD prefix set of these networks and everything inside them."""
    return "[ " + ", ".join(f"{p}+" for p in prefixes) + " ]"


def _match(prefixes: list[str], then: str) -> str:
    return f"    if net ~ {_set(prefixes)} then {then};\n" if prefixes else ""


def _static(name: str, fam: int, prefixes: list[str]) -> str:
    routes = "".join(f"    route {p} blackhole;\n" for p in prefixes)
    return f"protocol static {name} {{\n    ipv{fam};\n{routes}}}\n"


def _common(router_id: str, no_kernel: tuple[str, ...] = (), learn_default: bool = False) -> str:
    out = HEADER + (f"router id {router_id};\nlog stderr all;\ntimeformat protocol iso long;\n"
                    f"graceful restart wait {GR_WAIT};\n\n")
    out += "protocol device {\n    scan time 5;\n}\n"
    for fam in (4, 6):
        default = "0.0.0.0/0" if fam == 4 else "::/0"
        skip = [p for p in no_kernel if ipaddress.ip_network(p).version == fam]
        imp = f"filter {{ if net = {default} then accept; reject; }}" if learn_default else "none"
        # graceful restart: routes a previous BIRD left stay until this one has converged
        out += (f"protocol kernel pn_kernel{fam} {{\n    graceful restart on;\n"
                + ("    learn;\n" if learn_default else "")
                + f"    ipv{fam} {{\n        import {imp};\n"
                f"        export filter {{ " + (f"if net ~ {_set(skip)} then reject; " if skip else "")
                + "if source = RTS_BGP then accept; reject; };\n    };\n"
                f"    merge paths on;\n}}\n")
    return out


def _filters(plan: BgpPlan, fam: int) -> str:
    accept = plan.of_family(plan.accept, fam)
    no_export = plan.of_family(plan.no_export, fam)
    out = f"filter pn_import{fam} {{\n{_match(accept, 'accept')}    reject;\n}}\n"
    reflect = _match(accept, "accept") if plan.rr_cluster_id else ""
    out += (f"filter pn_export_cluster{fam} {{\n    if proto = \"pn_blocks{fam}\" then accept;\n"
            + (f"    if source = RTS_BGP then {{\n    {reflect}    }}\n" if reflect else "")
            + "    reject;\n}\n")
    out += (f"filter pn_export_peer{fam} {{\n{_match(no_export, 'reject')}"
            f"    if proto = \"pn_blocks{fam}\" then accept;\n"
            f"    if proto = \"pn_services{fam}\" then accept;\n    reject;\n}}\n")
    return out


def _session(plan: BgpPlan, p: Peer) -> str:
    local = plan.local4 if p.family == 4 else plan.local6
    out = f"protocol bgp {p.name} {{\n    local {local} as {plan.asn};\n"
    out += f"    neighbor {p.ip} as {p.asn};\n" + ("    multihop;\n" if p.multihop else "    direct;\n")
    if p.rr_client:
        out += f"    rr client;\n    rr cluster id {plan.rr_cluster_id};\n"
    out += TIMERS
    # a peer outside the cluster owns no pod block: nothing it says is imported
    imp = f"filter pn_import{p.family}" if p.internal else "none"
    export = "pn_export_cluster" if p.internal else "pn_export_peer"
    out += (f"    ipv{p.family} {{\n        import {imp};\n"
            f"        export filter {export}{p.family};\n"
            f"        gateway {'recursive' if p.multihop else 'direct'};\n    }};\n}}\n")
    return out


def render_node(plan: BgpPlan) -> str:
    """The node's whole bird.conf."""
    out = _common(plan.router_id, plan.no_kernel, plan.multihop)
    for fam in (4, 6):
        out += _static(f"pn_blocks{fam}", fam, plan.of_family(plan.blocks, fam))
        out += _static(f"pn_services{fam}", fam, plan.of_family(plan.services, fam))
        out += _filters(plan, fam)
    for p in plan.peers:
        out += _session(plan, p)
    return out


@dataclass(frozen=True)
class RouterPeering:
    """The lab router as a top-of-rack: it accepts sessions from any address of the node
    subnets (BIRD's dynamic `neighbor range`), so a new node peers without a config change,
    and from any AS but its own (`external`: the nodes' AS is the cluster's, or each node's
    own `spec.bgp.asNumber`, and may change without the router's configuration changing)."""
    router_id: str
    asn: int
    ranges: tuple[tuple[str, str], ...]  # (router's own address, node subnet) per rack and family
    refuse: tuple[str, ...]  # networks a node may never announce (the underlay, the outside)


def render_router(r: RouterPeering) -> str:
    out = _common(r.router_id)
    seen: dict[int, int] = {}
    for local, subnet in r.ranges:
        fam = ipaddress.ip_network(subnet).version
        seen[fam] = seen.get(fam, 0) + 1  # one session range per rack: pn_nodes4, pn_nodes4_2, ...
        name = f"pn_nodes{fam}" + (f"_{seen[fam]}" if seen[fam] > 1 else "")
        default = "0.0.0.0/0" if fam == 4 else "::/0"
        refuse = [p for p in r.refuse if ipaddress.ip_network(p).version == fam]
        out += (f"protocol bgp {name} {{\n    local {local} as {r.asn};\n"
                f"    neighbor range {subnet} external;\n    direct;\n" + TIMERS
                + f"    ipv{fam} {{\n        import filter {{\n"
                f"            if net = {default} then reject;\n"
                + (f"            if net ~ {_set(refuse)} then reject;\n" if refuse else "")
                + "            accept;\n        };\n        export none;\n    };\n}\n")
    return out
