"""`podnet up`: build a lab from its spec, seed its datastore, start its processes.

The lab's state (spec and every namespace name) is written BEFORE the first namespace
exists, and each PID as its process starts, so `podnet down` can undo a half-built lab.
Processes: per node an agent, a workload server (`podnet serve`) and the CNI daemon,
all inside the node's netns; one lab kubelet and the Kubernetes API server (lab/apiserver.py) in the first
node's netns; the outside world's echo server; with `--datastore etcd`
an etcd server inside the first node's netns, on that node's underlay address; dnsmasq
in the outside world, the nodes' resolver (/etc/netns/<node>/resolv.conf).
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from podnet.api import defaults
from podnet.api.objects import Resource, from_dict, node_report
from podnet.apiserver.write import Writer
from podnet.calc.topology import ZONE_LABEL
from podnet.datastore.interface import AlreadyExists, Datastore, open_datastore
from podnet.dns import lab as dns_lab
from podnet.lab import apiserver, builder, incluster, procs, tor
from podnet.lab.state import LabState
from podnet.lab.topology import (ECHO_TCP_PORT, ECHO_UDP_PORT, OUTSIDE_HOSTS, OUTSIDE_ZONE,
                                 RACK_LABEL, VXLAN_MODES, LabSpec, rack_name, spec_to_dict)

Progress = Callable[[str], None]
ETC_NETNS = Path("/etc/netns")


class LabError(Exception):
    pass


def default_objects(spec: LabSpec) -> list[Resource]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n},
         "status": {"phase": "Active"}} for n in ("default", "kube-system")]
    pools = [("default-ipv4-ippool", defaults.POD_CIDR_V4, defaults.BLOCK_SIZE_V4)]
    if spec.dual_stack:
        pools.append(("default-ipv6-ippool", defaults.POD_CIDR_V6, defaults.BLOCK_SIZE_V6))
    for name, cidr, bs in pools:
        objs.append({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                     "spec": {"cidr": cidr, "blockSize": bs, "natOutgoing": True,
                              "nodeSelector": "all()",
                              "vxlanMode": VXLAN_MODES[spec.encap]}})
    return [from_dict(o) for o in objs]


def addon_objects(spec: LabSpec) -> list[Resource]:
    """What a cluster installs beside the network: cluster DNS (its Deployment and the
    kube-dns Service)."""
    return [from_dict(o) for o in dns_lab.lab_objects(spec.dual_stack)]


def seed(store: Datastore, spec: LabSpec) -> None:
    """Write the lab's first objects through the write path, so admission records what
    they hold (kube-dns's ClusterIPs) like any user's object's."""
    writer = Writer(store)
    for obj in default_objects(spec) + addon_objects(spec) + tor.objects(spec) + \
            [from_dict(o) for o in incluster.objects(spec)]:
        try:
            writer.create(obj)
        except AlreadyExists:
            pass


def serve_socket(state: LabState, node: str) -> str:
    return str(state.path(f"serve-{node}.sock"))


# Every lab agent serves its sync counters as Prometheus text on this port of its node
# (Calico felix's port), for the node's own tools; pods cannot reach it (host protection).
AGENT_METRICS_PORT = 9091


def agent_argv(spec: LabSpec, node_name: str, url: str, state: LabState | None = None) -> list[str]:
    node = spec.node(node_name)
    argv = ["--datastore", url, "agent", "--node", node.name, "--encap", spec.encap,
            "--metrics-port", str(AGENT_METRICS_PORT), "--node-ip", node.ip4]
    if node.ip6:
        argv += ["--node-ip", node.ip6]
    if node.zone:
        argv += ["--node-label", f"{ZONE_LABEL}={node.zone}"]
    if spec.racks > 1:
        argv += ["--node-label", f"{RACK_LABEL}={rack_name(node.rack)}"]
    if spec.routing == "bgp":
        if state is None:
            raise LabError("--routing bgp: the agent's BIRD directory lives in the lab's state")
        argv += ["--routing", "bgp", "--bird-dir", str(tor.node_bird_dir(state, node.name))]
    return procs.podnet_argv(*argv)


def start_datastore(spec: LabSpec, state: LabState, progress: Progress) -> dict[str, str]:
    """Every component's datastore URL: `agent-<node>`, `kubelet`, `controllers`, `cni`,
    `dns` (the DNS add-on's pods), `cli` (the machine's namespace). On etcd each has its
    own client certificate (lab/etcd.py); on SQLite they are all the store file."""
    if spec.datastore in ("sqlite", "kubernetes"):
        url = f"sqlite://{state.path('store.db')}"
        from podnet.lab.etcd import CLIENTS
        urls = {w: url for w in (*CLIENTS, *(f"agent-{n.name}" for n in spec.nodes))}
        if spec.datastore == "kubernetes":
            # Kubernetes mode (issue 15 §2): the API server keeps the SQLite store; every
            # other process talks to the API only (its kubeconfig is written once the
            # server's certificates exist, before any of them starts)
            api = f"kubernetes://?kubeconfig={state.path('kubeconfig-incluster')}"
            urls = {w: (u if w == "apiserver" else api) for w, u in urls.items()}
            urls["cli"] = f"kubernetes://?kubeconfig={state.path('kubeconfig')}"
            for n in spec.nodes:  # a node's agent and CNI act as the node (system:node:<name>)
                node_api = f"kubernetes://?kubeconfig={apiserver.incluster_kubeconfig_path(state, n.name)}"
                urls[f"agent-{n.name}"] = urls[f"cni-{n.name}"] = node_api
        return urls
    from podnet.lab.etcd import start_etcd  # only etcd labs pay for it
    return start_etcd(spec, state, progress)


def component_url(meta: dict[str, Any], who: str) -> str:
    """`who`'s URL from the lab's state (labs made before per-component URLs: the node URL)."""
    return str((meta.get("datastoreURLs") or {}).get(who) or meta.get("datastoreURL") or "")


def node_cni_url(meta: dict[str, Any], node: str) -> str:
    """The store URL of `node`'s CNI daemon and of the network config its pods get: the
    node's own identity in Kubernetes mode, the lab's CNI URL otherwise."""
    return str((meta.get("datastoreURLs") or {}).get(f"cni-{node}") or component_url(meta, "cni"))


def up(spec: LabSpec, state: LabState, progress: Progress = lambda s: None,
       wait_nodes: float = 30.0, api_port: int = 0) -> dict[str, Any]:
    if state.exists:
        raise LabError(f"lab {spec.name!r} already exists ({state.dir}); "
                       f"`podnet down --name {spec.name}` first")
    t0 = time.monotonic()
    state.create()
    meta: dict[str, Any] = {"spec": spec_to_dict(spec), "netns": spec.all_netns,
                            "created": time.time()}
    state.write_meta(meta)
    builder.build(spec, progress)
    urls = start_datastore(spec, state, progress)
    cli_url = urls["cli"]
    meta["datastoreURL"] = urls["kubelet"]
    meta["cliDatastoreURL"] = cli_url
    meta["datastoreURLs"] = urls
    state.write_meta(meta)
    state.write_datastore_url(cli_url)
    kube_mode = spec.datastore == "kubernetes"
    store = open_datastore(urls["apiserver"] if kube_mode else cli_url)
    try:
        seed(store, spec)
        if kube_mode:  # everything after this talks to the API server
            meta["apiserver"] = apiserver.start(spec, state, urls["apiserver"], progress, api_port)
            apiserver.write_incluster_kubeconfig(state, spec)
            state.write_meta(meta)
        progress("datastore: " + cli_url.split("?")[0] + (" (default IP pools)"))
        procs.spawn(state, "echo", procs.podnet_argv(
            "serve", "--name", "outside/echo", "--port", f"{ECHO_TCP_PORT}/TCP",
            "--port", f"{ECHO_UDP_PORT}/UDP", "--port", f"{ECHO_UDP_PORT}/TCP"),
            netns=spec.outside_netns)
        start_outside_dns(spec, state, progress)
        if spec.routing == "bgp":
            tor.start(spec, state, progress)
        write_node_resolv_conf(spec)
        for node in spec.nodes:
            start_node(spec, state, meta, node.name)
        # the kubelet lives on the first (control-plane) node: no lab process runs outside
        # the lab's namespaces, so `down --force` finds every one even without PID files
        procs.spawn(state, "kubelet", procs.podnet_argv("kubelet", "--state", str(state.dir)),
                    netns=spec.nodes[0].netns, net_only=True)
        progress(f"agents and workload servers on {len(spec.nodes)} nodes, kubelet, "
                 f"echo server {spec.echo4}:{ECHO_TCP_PORT}/tcp {ECHO_UDP_PORT}/udp")
        if not kube_mode:
            meta["apiserver"] = apiserver.start(spec, state, urls["apiserver"], progress, api_port)
            state.write_meta(meta)
        wait_for_nodes(store, spec, state, wait_nodes)
    finally:
        store.close()
    progress(f"lab {spec.name} up in {time.monotonic() - t0:.1f}s")
    return meta


NODE_PROCESSES = ("cni", "serve", "agent")  # each node's, recorded as `<what>-<node>`


def start_node(spec: LabSpec, state: LabState, meta: dict[str, Any], name: str) -> None:
    """The node's CNI daemon, workload server and agent, inside its netns."""
    node = spec.node(name)
    # the CNI plugins are thin clients of this per-node daemon (podnet.cni.daemon)
    # serving this lab's datastore only: the CNI's URL, which the kubelet puts in the
    # network config it hands the plugins (component_url(meta, "cni"))
    procs.spawn(state, f"cni-{name}", [sys.executable, "-m", "podnet.cni.daemon",
                                       "--datastore", node_cni_url(meta, name)], netns=node.netns)
    procs.spawn(state, f"serve-{name}", procs.podnet_argv(
        "serve", "--control", serve_socket(state, name)), netns=node.netns)
    procs.spawn(state, f"agent-{name}", agent_argv(spec, name, component_url(meta, f"agent-{name}"), state),
                netns=node.netns)


def start_outside_dns(spec: LabSpec, state: LabState, progress: Progress) -> None:
    """dnsmasq in the outside world, authoritative for OUTSIDE_ZONE, nothing upstream."""
    binary = shutil.which("dnsmasq")
    if binary is None:
        progress("no dnsmasq: the outside world has no DNS server (apt install dnsmasq-base)")
        return
    addrs = [spec.echo4] + ([spec.echo6] if spec.dual_stack else [])
    hosts = ",".join(f"{h}.{OUTSIDE_ZONE}" for h in OUTSIDE_HOSTS)
    argv = [binary, "-C", "/dev/null", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--no-poll", "--bind-interfaces", "--user=root", "--pid-file=", "--log-facility=-",
            f"--local=/{OUTSIDE_ZONE}/", f"--host-record={hosts},{','.join(addrs)}"]
    argv += [f"--listen-address={a}" for a in addrs]
    procs.spawn(state, "dns-outside", argv, netns=spec.outside_netns)
    progress(f"outside DNS {spec.echo4}:53 for {OUTSIDE_ZONE} "
             f"({', '.join(f'{h}.{OUTSIDE_ZONE}' for h in OUTSIDE_HOSTS)})")


def write_node_resolv_conf(spec: LabSpec) -> None:
    """What `ip netns exec <node>` shows as /etc/resolv.conf (removed by `podnet down`)."""
    for node in spec.nodes:
        d = ETC_NETNS / node.netns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(spec.node_resolv_conf())


def wait_for_nodes(store: Datastore, spec: LabSpec, state: LabState, timeout: float,
                   names: Sequence[str] = ()) -> None:
    """Until every agent (of `names`, default all) has registered its Node and finished
    its first sync."""
    deadline = time.monotonic() + timeout
    want = set(names) or {n.name for n in spec.nodes}
    while True:
        ready = {n.name for n in store.list("Node").items
                 if (node_report(n, "agent").get("syncs") or 0) > 0}
        if want <= ready:
            return
        dead = [w for w, pid in state.pids().items() if not procs.alive(pid)]
        if dead:
            raise LabError(f"lab {spec.name}: {', '.join(dead)} exited; see "
                           f"{state.path('logs')}/<name>.log")
        if time.monotonic() > deadline:
            raise LabError(f"lab {spec.name}: nodes {', '.join(sorted(want - ready))} did not "
                           f"register within {timeout:.0f}s; see {state.path('logs')}")
        time.sleep(0.05)
