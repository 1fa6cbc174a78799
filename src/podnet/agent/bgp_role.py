"""The BGP role (`--routing bgp`): this node's BIRD, configured from the datastore.

calc/bgp.py decides (peers, what to originate, what to accept); dataplane/bird renders
and runs it. Each sync renders the configuration; when the text changed it is checked,
written, and BIRD reloads it (or starts, the first time, or again if it died). BIRD is
a child of the agent (stopping the agent stops it; an agent that dies takes it along,
and peers and the kernel keep its routes until the next agent's BIRD is back, or the
graceful restart time runs out) and installs the
routes it learns itself (`proto bird`); the routes role installs only those of pools that
may encapsulate (vxlanMode Always, CrossSubnet), which BIRD leaves alone.
No nftables: `nft_fragment` is always empty.
"""
from __future__ import annotations

import logging
from pathlib import Path

from podnet.api.objects import ObjectKey
from podnet.calc.bgp import plan_bgp
from podnet.calc.encap import DEFAULT_MODES
from podnet.calc.model import ClusterState
from podnet.dataplane.bird.conf import render_node
from podnet.dataplane.bird.daemon import Bird

log = logging.getLogger("podnet.agent.bgp")


class BgpRole:
    name = "bgp"
    kinds = ("Node", "IPAMBlock", "IPPool", "BGPConfiguration", "BGPPeer", "Service", "EndpointSlice")

    def __init__(self, node_name: str, bird_dir: str | Path, netns: str | None = None,
                 encap: str = "none"):
        self.node_name = node_name
        self.default_mode = DEFAULT_MODES.get(encap, "Never")  # of pools that do not say
        self.bird = Bird(bird_dir, netns)
        self.text = ""

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        return ""

    def committed(self, ok: bool) -> None:
        pass

    def apply_kernel(self, state: ClusterState) -> None:
        plan = plan_bgp(self.node_name, state.nodes, state.of_kind("IPAMBlock"), state.ippools,
                        state.of_kind("BGPConfiguration"), state.of_kind("BGPPeer"),
                        state.services, state.endpoint_slices, self.default_mode)
        if plan is None:
            return  # our Node is not registered yet: no addresses to speak from
        text = render_node(plan)
        running = self.bird.running()
        if text == self.text and running:
            return
        self.bird.write(text)
        if running:
            self.bird.configure()
            log.info("BIRD reconfigured: %d peers, %d own blocks", len(plan.peers), len(plan.blocks))
        else:
            pid = self.bird.start()
            log.info("BIRD started (pid %d, %s): %d peers, %d own blocks", pid, self.bird.ctl,
                     len(plan.peers), len(plan.blocks))
        self.text = text

    def close(self) -> None:
        """The agent is stopped (SIGTERM: `podnet down`, `podnet node delete`): BIRD stops
        for good, its peers withdraw its routes at once. An agent that dies instead takes
        BIRD along abruptly (see Bird.child_argv): its peers keep its routes for the
        graceful restart time and the next agent's BIRD recovers them."""
        self.bird.stop()
