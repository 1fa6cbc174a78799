"""`podnet agent --node NAME`: run the node agent in the current network namespace.

Run it inside the node's netns (the lab does `ip netns exec <node-ns> podnet agent ...`).
SIGTERM and SIGINT stop it cleanly; the kernel state stays (routes and rules survive an
agent restart, and the next start sweeps exactly what is podnet's).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from podnet.agent.agent import Agent, AgentContext
from podnet.agent.bgp_role import BgpRole
from podnet.agent.flow_server import FlowRecorder, context_of
from podnet.agent.flow_staged import StagedJudge
from podnet.agent.metrics import serve_metrics
from podnet.calc.encap import DEFAULT_MODES
from podnet.dataplane import ulogd
from podnet.dataplane.net.links import addresses, default_route_dev
from podnet.dataplane.net.sysctl import NODE_SYSCTLS, current_netns_name, write_sysctls
from podnet.datastore.interface import DatastoreError, open_datastore

log = logging.getLogger("podnet.agent")


class AgentError(Exception):
    pass


def detect_node_ips() -> list[str]:
    """The global addresses of the device that carries the default route."""
    dev = default_route_dev(None)
    if not dev:
        raise AgentError("no --node-ip given and no default route to find the node's address by")
    ips = addresses(None, dev)
    if not ips:
        raise AgentError(f"no --node-ip given and {dev} has no global address")
    return ips


def _start_flows(agent: Agent, node: str, options: dict[str, Any]) -> FlowRecorder | None:
    """The flow recorder (issue 18), unless `flows` is off or ulogd2 is missing (then said)."""
    if options.get("flows") is False:
        return None
    if not ulogd.available():
        log.warning("flows: ulogd2 and its JSON plugin are not installed (Debian ulogd2 ulogd2-json): "
                    "no flow records on this node")
        return None
    rec = FlowRecorder(node, context_of(agent), cap=int(options.get("flows_cap") or 4096),
                       judge=lambda: StagedJudge(agent.state))
    try:
        rec.start()
    except OSError as e:
        log.warning("flows: not recorded: %s", e)
        rec.close()
        return None
    agent.after_sync.append(rec.refresh)
    log.info("flows: recording (ring of %d) on @%s", rec.ring.cap, rec.socket_name)
    return rec


def run_agent(url: str, node: str, encap: str = "none", node_ips: list[str] | None = None,
              options: dict[str, Any] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if encap not in DEFAULT_MODES:
        raise AgentError(f"--encap {encap!r}: must be one of {', '.join(DEFAULT_MODES)}")
    if current_netns_name() is None and os.environ.get("PODNET_AGENT_ALLOW_HOST_NETNS") != "1":
        # lab safety: forwarding sysctls, routes and nft tables would land in the machine's
        # own namespace; a real node opts in explicitly
        raise AgentError("refusing to run in an unnamed network namespace (the machine's own?): "
                         "run it in a node's (ip netns exec <node> podnet agent ...) or set "
                         "PODNET_AGENT_ALLOW_HOST_NETNS=1 on a real node")
    ips = list(node_ips or []) or detect_node_ips()
    write_sysctls(None, NODE_SYSCTLS)
    try:
        store = open_datastore(url)
    except (DatastoreError, OSError) as e:
        raise AgentError(f"datastore {url}: {e}") from e
    agent = Agent(AgentContext(node, ips, encap, None, store, dict(options or {})))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop.set())
    log.info("agent for node %s (%s), encap %s, roles: %s", node, ", ".join(ips), encap,
             ", ".join(r.name for r in agent.roles) or "none")
    recorder = _start_flows(agent, node, options or {})
    server = None
    port = int((options or {}).get("metrics_port") or 0)
    if port:
        server = serve_metrics(port, lambda: agent.metrics.prometheus(node) + (
            "\n".join(recorder.prometheus()) + "\n" if recorder is not None else ""))
        log.info("metrics on :%d/metrics", port)
    try:
        agent.run()
    finally:
        for role in agent.roles:
            if isinstance(role, BgpRole):
                role.close()  # BIRD goes with its agent: its sessions drop, peers withdraw
        if server is not None:
            server.shutdown()
        if recorder is not None:
            recorder.close()
        store.close()
    return 0
