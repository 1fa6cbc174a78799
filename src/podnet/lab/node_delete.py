"""`podnet node delete NAME`: a node leaves a running lab (issue 17 §4).

In order: refuse (the control-plane node, an unknown node: nothing changed), cordon
(`spec.unschedulable`: the kubelet places nothing new there), drain (lab/drain.py: every
pod on it ends gracefully through its deletionTimestamp, a Deployment's pods start again
elsewhere), stop its processes (agent, and with it BIRD: its BGP sessions close and the
router and the other nodes withdraw its blocks; workload server, CNI daemon; anything
else left in its netns; the router forgets its sessions), write the lab's spec without it, release its IPAM blocks and
affinities (ipam/node_release.py), delete its Node (the other agents drop its static
routes, VXLAN neighbours and BGP peering), then delete its namespace. Last, wait until no
other node routes to it any more.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from podnet.api.objects import Pod
from podnet.apiserver.write import Writer
from podnet.dataplane.net.links import ip_json
from podnet.dataplane.net.netns import CommandError
from podnet.datastore.interface import Datastore, NotFound
from podnet.ipam.node_release import NodeRelease, release_node
from podnet.lab import network, procs, tor
from podnet.lab.drain import on_node, plan_drain
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec, NodeSpec, spec_to_dict
from podnet.lab.up import ETC_NETNS, NODE_PROCESSES, serve_socket

Progress = Callable[[str], None]
ROUTES_GONE_WITHIN = 15.0


@dataclass
class NodeDeleted:
    name: str
    evicted: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)  # pods still there when the drain timed out
    processes: list[str] = field(default_factory=list)
    ipam: NodeRelease | None = None
    routes_left: list[str] = field(default_factory=list)  # "<node>: <route>" still via it


def cordon(store: Datastore, name: str) -> bool:
    """spec.unschedulable = true on the Node (False: it has no Node, its agent never registered)."""
    try:
        Writer(store).mutate("Node", "", name, lambda cur: cur.with_spec({**cur.spec, "unschedulable": True}))
        return True
    except NotFound:
        return False


def pods_of(store: Datastore) -> list[Pod]:
    return [p for p in store.list("Pod").items if isinstance(p, Pod)]


def drain(store: Datastore, name: str, report: NodeDeleted, progress: Progress) -> None:
    plan = plan_drain(pods_of(store), name)
    writer = Writer(store)
    for p in plan.evict:
        try:
            writer.delete("Pod", p.namespace, p.name)
            report.evicted.append(f"{p.namespace}/{p.name}")
        except NotFound:
            pass
    if plan.evict or plan.waiting:
        progress(f"draining {name}: {len(plan.evict)} pods ending gracefully"
                 + (f" ({len(plan.replaced)} replaced by their Deployment elsewhere)" if plan.replaced else "")
                 + (f", {len(plan.waiting)} already ending" if plan.waiting else ""))
    deadline = time.monotonic() + plan.timeout
    while on_node(pods_of(store), name):
        if time.monotonic() > deadline:
            # the kubelet did not finish them (is it running?): as `kubectl delete --force`
            for p in on_node(pods_of(store), name):
                try:
                    writer.delete("Pod", p.namespace, p.name, grace_period=0)
                    report.forced.append(f"{p.namespace}/{p.name}")
                except NotFound:
                    pass
            progress(f"drain of {name} timed out after {plan.timeout:.0f}s: deleted for good: "
                     f"{', '.join(report.forced)}")
            return
        time.sleep(0.1)


def stop_node(state: LabState, node: NodeSpec) -> list[str]:
    """The node's recorded processes, then anything else still in its netns (BIRD)."""
    stopped = procs.stop_named(state, [f"{what}-{node.name}" for what in NODE_PROCESSES])
    stray = procs.netns_pids(node.netns) if network.netns_exists(node.netns) else []
    if stray:
        procs.stop(stray, group=False, timeout=2.0)
    return stopped + [f"pid {p}" for p in stray]


def remove_node_files(spec: LabSpec, state: LabState, node: NodeSpec) -> None:
    """Its namespace (with its links and routes), /etc/netns entry, BIRD dir, socket."""
    network.delete_netns(node.netns)
    shutil.rmtree(ETC_NETNS / node.netns, ignore_errors=True)
    shutil.rmtree(tor.node_bird_dir(state, node.name), ignore_errors=True)
    Path(serve_socket(state, node.name)).unlink(missing_ok=True)


def write_spec(state: LabState, spec: LabSpec, gone: NodeSpec | None = None) -> None:
    meta = state.read_meta()
    meta["spec"] = spec_to_dict(spec)
    if gone is not None:
        meta["netns"] = [n for n in meta.get("netns") or [] if n != gone.netns]
        urls = meta.get("datastoreURLs") or {}
        for who in (f"agent-{gone.name}", f"cni-{gone.name}"):
            urls.pop(who, None)
    state.write_meta(meta)


def routes_via(spec: LabSpec, node: NodeSpec) -> list[str]:
    """Routes of the other nodes and the router whose next hop is `node`."""
    out = []
    for ns in [n.netns for n in spec.nodes if n != node] + [spec.router_netns]:
        for fam in ("-4", "-6"):
            try:
                routes = ip_json(ns, fam, "route", "show")
            except CommandError:
                continue
            for r in routes:
                hops = [r.get("gateway")] + [h.get("gateway") for h in r.get("nexthops") or []]
                if set(hops) & set(node.ips):
                    out.append(f"{ns}: {r.get('dst')} via {node.name}")
    return out


def delete_node(spec: LabSpec, state: LabState, store: Datastore, name: str,
                progress: Progress = lambda s: None) -> NodeDeleted:
    remaining = spec.without_node(name)  # refuses the control plane or an unknown node: nothing changed
    node = spec.node(name)
    report = NodeDeleted(name)
    if cordon(store, name):
        progress(f"cordoned {name}")
    drain(store, name, report, progress)
    report.processes = stop_node(state, node)
    if spec.routing == "bgp":
        tor.forget_node(state, node.ips)
    write_spec(state, remaining)
    report.ipam = release_node(store, name)
    try:
        Writer(store).delete("Node", "", name)
    except NotFound:
        pass
    progress(f"{name}: processes stopped ({', '.join(report.processes) or 'none running'}), "
             f"{len(report.ipam.freed)} addresses freed, blocks deleted: "
             f"{', '.join(report.ipam.deleted) or 'none'}"
             + (f", kept without affinity: {', '.join(report.ipam.unaffined)}" if report.ipam.unaffined else "")
             + ", Node deleted")
    remove_node_files(spec, state, node)
    write_spec(state, remaining, gone=node)
    deadline = time.monotonic() + ROUTES_GONE_WITHIN
    while True:
        report.routes_left = routes_via(remaining, node)
        if not report.routes_left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return report
