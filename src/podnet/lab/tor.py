"""The lab router as a top-of-rack BGP speaker (`podnet up --routing bgp`, issue 21 §1).

The router runs BIRD (started here, its PID recorded like every lab process) in AS
ROUTER_ASN, accepting sessions from any node address of the underlay (so a node that
joins later peers without a change), learning the pod blocks the nodes announce and
installing them in its kernel, so the outside world (whose default route is the router)
reaches pod addresses directly. It announces nothing to the nodes. The nodes learn of
it from the BGPPeer objects `objects(spec)` seeds (global peers: every node peers with
it), through the same write path as any user's object. With racks, the router is every
rack's ToR: one session range per rack subnet, and one BGPPeer per rack and family whose
nodeSelector (`podnet.io/rack == 'b'`) makes each node peer with its own rack's address.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from podnet.api.objects import Resource, from_dict
from podnet.dataplane.bird.conf import RouterPeering, render_router
from podnet.dataplane.bird.daemon import Bird, birdc, sessions
from podnet.lab import procs
from podnet.lab.state import LabState
from podnet.lab.topology import RACK_LABEL, LabSpec, rack_name

ROUTER_ASN = 65000
PEER_NAMES = ("lab-router-v4", "lab-router-v6")


def node_bird_dir(state: LabState, node: str) -> Path:
    return state.path(f"bird-{node}")


def router_bird_dir(state: LabState) -> Path:
    return state.path("bird-router")


def objects(spec: LabSpec) -> list[Resource]:
    """The router as the nodes' BGP peer, per family (and per rack: the rack's address)."""
    if spec.routing != "bgp":
        return []
    out = []
    for rack in range(spec.racks):
        peers = [(PEER_NAMES[0], spec.rack_router4(rack))] + \
            ([(PEER_NAMES[1], spec.rack_router6(rack))] if spec.dual_stack else [])
        for name, ip in peers:
            p: dict[str, object] = {"peerIP": ip, "asNumber": ROUTER_ASN}
            if spec.racks > 1:
                name = f"{name}-{rack_name(rack)}"
                p["nodeSelector"] = f"{RACK_LABEL} == '{rack_name(rack)}'"
            out.append(from_dict({"apiVersion": "podnet.io/v1", "kind": "BGPPeer",
                                  "metadata": {"name": name}, "spec": p}))
    return out


def peering(spec: LabSpec) -> RouterPeering:
    ranges = [(spec.rack_router4(r), spec.rack_net4(r)) for r in range(spec.racks)]
    refuse = spec.underlays4 + [spec.outside4]
    if spec.dual_stack:
        ranges += [(spec.rack_router6(r), spec.rack_net6(r)) for r in range(spec.racks)]
        refuse += spec.underlays6 + [spec.outside6]
    return RouterPeering(spec.router_ul4, ROUTER_ASN, tuple(ranges), tuple(refuse))


def start(spec: LabSpec, state: LabState, progress: Callable[[str], None]) -> int:
    bird = Bird(router_bird_dir(state))
    bird.write(render_router(peering(spec)))
    pid = procs.spawn(state, "bird-router", bird.argv(), netns=spec.router_netns)
    progress(f"router: BIRD (AS {ROUTER_ASN}) peering with the nodes of {', '.join(spec.underlays4)}, "
             f"control socket {bird.ctl}")
    return pid


def router_routes(state: LabState, family: int = 4) -> str:
    """What the router's BIRD has learned (`birdc show route`), as text."""
    return birdc(router_bird_dir(state) / "bird.ctl", f"show route table master{family}").stdout


def forget_node(state: LabState, ips: list[str]) -> list[str]:
    """The router's sessions with a node that left the lab (`podnet node delete`): BIRD
    keeps a dynamic session trying to reconnect to its peer forever, so it is disabled and
    BIRD reconfigured, which drops disabled dynamic sessions. Returns their names."""
    ctl = router_bird_dir(state) / "bird.ctl"
    names = [s.name for s in sessions(ctl) if s.neighbor in ips]
    for name in names:
        birdc(ctl, f"disable {name}")
    if names:
        birdc(ctl, "configure")
    return names
