"""`podnet node add NAME`: a node joins a running lab (issue 17 §4).

The lab's state learns the node first (its spec and namespace in lab.json, as `podnet up`
writes them before building), so `podnet down` removes it whatever happens next. Then,
as `podnet up` does for each node: its namespace wired to the underlay and addressed
(lab/builder.py), its resolv.conf, its datastore identity (a client certificate on etcd),
its CNI daemon, workload server and agent (with BIRD when the lab routes with BGP; VXLAN
when the lab encapsulates). The agent registers the Node; the kubelet, seeing a Node its
spec lacks, reads the spec again and schedules there; the other agents learn its address
(static routes, VXLAN neighbours, BGP peers) from the Node, and its blocks once it claims
them (IPAM blocks on demand, at its first pod). A failure on the way undoes it all.
"""
from __future__ import annotations

from typing import Any, Callable

from podnet.datastore.interface import Datastore, NotFound
from podnet.lab import builder, network
from podnet.lab.node_delete import remove_node_files, stop_node, write_spec
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec, NodeSpec, spec_to_dict
from podnet.lab.up import ETC_NETNS, LabError, component_url, start_node, wait_for_nodes

Progress = Callable[[str], None]


def node_url(spec: LabSpec, state: LabState, meta: dict[str, Any], name: str) -> str:
    """The new agent's datastore URL: its own client certificate on etcd, the store file
    on SQLite."""
    if spec.datastore == "etcd":
        from podnet.lab.etcd import client_url, pki
        pki(spec, state).issue_client(f"agent-{name}")
        return client_url(spec, state, f"agent-{name}")
    return component_url(meta, "kubelet")


def add_node(spec: LabSpec, state: LabState, store: Datastore, name: str,
             progress: Progress = lambda s: None, wait: float = 30.0) -> NodeSpec:
    if spec.datastore == "kubernetes":
        raise LabError(f"lab {spec.name} keeps its nodes' identities in the API server's token file, "
                       f"made at `podnet up`: `podnet node add` works on sqlite and etcd labs")
    grown = spec.with_node(name)  # refuses a bad or existing name: nothing changed
    node = grown.node(name)
    if network.netns_exists(node.netns):
        raise LabError(f"namespace {node.netns} exists already (a leftover?): "
                       f"`ip netns del {node.netns}` or `podnet down --force` first")
    meta = state.read_meta()
    meta["spec"] = spec_to_dict(grown)
    meta["netns"] = [*(meta.get("netns") or []), node.netns]
    meta.setdefault("datastoreURLs", {})[f"agent-{name}"] = node_url(grown, state, meta, name)
    state.write_meta(meta)
    try:
        builder.add_node(grown, node)
        d = ETC_NETNS / node.netns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(grown.node_resolv_conf())
        progress(f"{name}: namespace {node.netns}, underlay {', '.join(node.ips)}"
                 + (f", zone {node.zone}" if node.zone else ""))
        start_node(grown, state, meta, name)
        wait_for_nodes(store, grown, state, wait, names=[name])
    except BaseException:
        undo(spec, state, store, node)
        raise
    progress(f"{name}: agent{' and BIRD' if spec.routing == 'bgp' else ''}, workload server and "
             f"CNI daemon running; Node registered")
    return node


def undo(spec: LabSpec, state: LabState, store: Datastore, node: NodeSpec) -> None:
    """Back to the lab as it was: processes, namespace, state, the Node if registered."""
    stop_node(state, node)
    remove_node_files(spec, state, node)
    write_spec(state, spec, gone=node)
    try:
        store.delete("Node", "", node.name)
    except NotFound:
        pass
