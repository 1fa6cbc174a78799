"""`podnet up`, `down`, `labs`, `use`, `exec`, `serve`, `agent`, `kubelet`: the lab and its processes.

Thin: parse, call podnet.lab / podnet.agent, print. Lab state lives in
`podnet.cli.context.lab_dir(name)`; `up` makes the lab current so that plain
`podnet get pods` talks to its datastore.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.cli import context
from podnet.cli.errors import UserError

DEFAULT_LAB = "lab"


def _state(name: str) -> Any:
    from podnet.lab.state import LabState
    return LabState(context.lab_dir(name))


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise UserError(f"{what} needs root (it creates network namespaces)")


# ---- up / down --------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace) -> int:
    from podnet.lab.topology import TopologyError, make_spec
    from podnet.lab.up import LabError, up
    _need_root("podnet up")
    try:
        spec = make_spec(args.name, args.nodes, args.dual_stack, args.encap, args.datastore, args.zones,
                         args.routing, args.racks)
    except TopologyError as e:
        raise UserError(str(e)) from None
    state = _state(spec.name)
    t0 = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - t0:5.2f}s] {line}", flush=True)

    try:
        meta = up(spec, state, progress, api_port=args.api_port)
    except LabError as e:
        raise UserError(f"{e}\n(clean up with: podnet down --name {spec.name} --force)") from None
    except Exception as e:
        print(f"podnet up failed: {e}; tearing the half-built lab down", file=sys.stderr)
        from podnet.lab.down import teardown
        teardown(spec.name, state)
        raise UserError(f"podnet up --name {spec.name}: {e}") from None
    context.set_current_lab(spec.name)
    print(f"lab {spec.name!r} is up and current: try `podnet get nodes -o wide`")
    if meta.get("apiserver"):
        print(f"export KUBECONFIG={state.path('kubeconfig')}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from podnet.lab.down import lab_namespaces, teardown
    from podnet.lab.topology import TopologyError, validate_name
    _need_root("podnet down")
    name = args.name or context.current_lab()
    if not name:
        raise UserError("no current lab: give --name NAME")
    try:
        validate_name(name)
    except TopologyError as e:
        raise UserError(str(e)) from None
    state = _state(name)
    if not state.exists and not args.force and not lab_namespaces(name) \
            and not state.dir.exists():
        raise UserError(f"no lab named {name!r} (use --force to clean up leftovers anyway)")
    t0 = time.monotonic()
    rep = teardown(name, state)
    if context.current_lab() == name:
        context.set_current_lab(None)
    print(f"lab {name!r} down in {time.monotonic() - t0:.1f}s: {len(rep.processes)} processes, "
          f"{len(rep.namespaces)} namespaces"
          + (f", {len(rep.stray_pids)} stray processes" if rep.stray_pids else ""))
    return 0


def cmd_labs(args: argparse.Namespace) -> int:
    root = context.podnet_home() / "labs"
    current = context.current_lab()
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        st = _state(d.name)
        meta = st.read_meta()
        if not meta:
            continue
        spec = meta.get("spec") or {}
        nodes = spec.get("nodes", "?")  # names (a count in labs made before `podnet node add`)
        shown = ",".join(map(str, nodes)) if isinstance(nodes, list) else str(nodes)
        rows.append(("*" if d.name == current else "", d.name, shown,
                     "dual" if spec.get("dualStack") else "ipv4", str(spec.get("encap", "")),
                     str(spec.get("datastore", ""))))
    if not rows:
        print("no labs: `podnet up` builds one")
        return 0
    headers = ("CURRENT", "NAME", "NODES", "STACK", "ENCAP", "DATASTORE")
    widths = [max(len(r[i]) for r in rows + [headers]) for i in range(len(headers))]
    for r in [headers] + rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    if not _state(args.name).exists:
        raise UserError(f"no lab named {args.name!r} (see `podnet labs`)")
    context.set_current_lab(args.name)
    print(f"lab {args.name!r} is current")
    return 0


# ---- exec -------------------------------------------------------------------------------
def pod_netns(args: argparse.Namespace, namespace: str, pod: str) -> str:
    from podnet.datastore.interface import NotFound
    store = context.open_store(args)
    try:
        obj = store.get("Pod", namespace, pod)
    except NotFound:
        raise UserError(f"pod {namespace}/{pod} not found") from None
    finally:
        store.close()
    ns = obj.annotations.get(NETNS_ANNOTATION)
    if not ns:
        raise UserError(f"pod {namespace}/{pod} has no network namespace yet "
                        f"(phase {obj.status.get('phase') or 'Pending'})")
    if args.container:
        names = [c.get("name") for c in obj.spec.get("containers") or []]
        if args.container not in names:
            raise UserError(f"pod {namespace}/{pod} has no container {args.container!r} "
                            f"(containers: {', '.join(map(str, names))})")
    return ns


def split_exec_args(args: argparse.Namespace) -> list[str]:
    """kubectl's order, `POD [-c C] [-n NS] -- CMD`: options may follow the pod name, which
    argparse cannot mix with a trailing command, so the tail is parsed here."""
    rest = list(args.rest)
    args.pod = None
    while rest:
        tok = rest.pop(0)
        if tok == "--":
            break
        if tok in ("-c", "--container", "-n", "--namespace") and rest:
            setattr(args, "container" if tok in ("-c", "--container") else "namespace", rest.pop(0))
        elif tok.startswith("-") and args.pod is None:
            raise UserError(f"podnet exec: unknown option {tok!r}")
        elif args.pod is None:
            args.pod = tok
        else:
            rest.insert(0, tok)  # no `--`: the command starts here
            break
    if not args.pod:
        raise UserError("give a pod: podnet exec POD -- CMD ...")
    return rest


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = split_exec_args(args)
    if not cmd:
        raise UserError("give a command: podnet exec POD -- CMD ...")
    ns = pod_netns(args, args.namespace, args.pod)
    if not os.path.exists(f"/var/run/netns/{ns}"):
        raise UserError(f"pod {args.namespace}/{args.pod}: network namespace {ns} is gone")
    sys.stdout.flush()
    os.execvp("ip", ["ip", "netns", "exec", ns, *cmd])
    return 127  # not reached


# ---- processes ----------------------------------------------------------------------------
def _parse_port(text: str) -> tuple[int, str]:
    port, _, proto = text.partition("/")
    proto = (proto or "TCP").upper()
    if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("TCP", "UDP", "SCTP"):
        raise argparse.ArgumentTypeError(f"--port {text!r}: use PORT[/TCP|UDP|SCTP]")
    return int(port), proto


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading
    from podnet.lab.serve import run_direct
    from podnet.lab.serve_control import run_node_server
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.control:
        run_node_server(args.control, stop)
        return 0
    if not args.name or not args.port:
        raise UserError("podnet serve: give --control SOCKET, or --name NS/NAME and --port PORT/PROTO")
    run_direct(args.name, list(args.port), stop, log=lambda s: print(s, flush=True))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from podnet.agent.main import AgentError, run_agent
    try:
        opts: dict[str, Any] = {"flows": not args.no_flows, "flows_cap": args.flows_cap,
                                "node_labels": dict(args.node_label)}
        if args.metrics_port:
            opts["metrics_port"] = args.metrics_port
        if args.routing == "bgp":
            opts.update(routing="bgp", bird_dir=args.bird_dir)
        if args.services != "podnet":
            opts["services"] = args.services
        return run_agent(context.datastore_url(args), args.node, args.encap, args.node_ip, opts)
    except AgentError as e:
        raise UserError(str(e)) from None


def cmd_kubelet(args: argparse.Namespace) -> int:
    from podnet.lab.kubelet_main import run_kubelet
    return run_kubelet(args.state)


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="build a lab: a cluster of network namespaces on this machine")
    p.add_argument("--name", default=DEFAULT_LAB, help=f"lab name (default {DEFAULT_LAB})")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--dual-stack", action="store_true", help="IPv4 and IPv6 everywhere")
    p.add_argument("--encap", choices=("none", "vxlan", "crosssubnet"), default="none",
                   help="the default pools' vxlanMode: Never, Always, or CrossSubnet (VXLAN only "
                        "between racks)")
    p.add_argument("--racks", type=int, default=1,
                   help="L2 underlay segments (198.18.<r>.0/24), routed by the router; nodes "
                        "round-robin over them (label podnet.io/rack=a, b, ...)")
    p.add_argument("--zones", type=int, default=0,
                   help="spread the nodes over this many zones (a, b, ...: the label "
                        "topology.kubernetes.io/zone, for trafficDistribution)")
    p.add_argument("--routing", choices=("static", "bgp"), default="static",
                   help="bgp: BIRD on every node (full mesh) and on the router, a ToR peer")
    p.add_argument("--datastore", dest="datastore_kind", choices=("sqlite", "etcd", "kubernetes"),
                   default="sqlite", help="the lab's datastore backend")
    p.add_argument("--api-port", type=int, default=0,
                   help="the API server's loopback port on this machine (default: a free one)")
    p.set_defaults(func=lambda a: cmd_up(_with_kind(a)))

    p = sub.add_parser("down", help="stop a lab and remove every namespace, process and file of it")
    p.add_argument("--name", help="lab name (default: the current lab)")
    p.add_argument("--force", action="store_true", help="also clean up leftovers of a crashed lab")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("labs", help="list the labs on this machine (* = current)")
    p.set_defaults(func=cmd_labs)

    p = sub.add_parser("use", help="make a lab the current one (plain commands talk to it)")
    p.add_argument("name")
    p.set_defaults(func=cmd_use)

    p = sub.add_parser("exec", help="run a command inside a pod's network namespace")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-c", "--container", default="")
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="POD [-c CONTAINER] -- CMD ...")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("serve", help="the lab's workload server")
    p.add_argument("--control", help="node mode: serve the pods added through this unix socket")
    p.add_argument("--name", help="direct mode: the identity to answer with (NS/NAME)")
    p.add_argument("--port", action="append", type=_parse_port, help="PORT[/TCP|UDP|SCTP] (repeat)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("agent", help="run the node agent in the current network namespace")
    p.add_argument("--node", required=True)
    p.add_argument("--encap", choices=("none", "vxlan", "crosssubnet"), default="none",
                   help="the vxlanMode of pools that do not say: Never, Always, CrossSubnet")
    p.add_argument("--node-ip", action="append", default=[], help="the node's address (repeat per family)")
    p.add_argument("--node-label", action="append", default=[], type=_parse_label, metavar="KEY=VALUE",
                   help="a label the agent keeps on its Node (repeat; as kubelet's --node-labels), "
                        "e.g. topology.kubernetes.io/zone=a")
    p.add_argument("--routing", choices=("static", "bgp"), default="static",
                   help="bgp: run BIRD and learn other nodes' blocks over BGP (static routes only "
                        "for pools that may encapsulate)")
    p.add_argument("--bird-dir", default="/run/podnet/bird",
                   help="BIRD's configuration, control socket and log (with --routing bgp)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="serve sync counts and durations as Prometheus text on this TCP port (/metrics)")
    p.add_argument("--no-flows", action="store_true", help="record no flows (podnet flows; needs ulogd2)")
    p.add_argument("--flows-cap", type=int, default=int(os.environ.get("PODNET_FLOWS_CAP") or 4096),
                   help="flow records kept (the ring's size; env PODNET_FLOWS_CAP)")
    p.add_argument("--services", choices=("podnet", "kube-proxy"), default="podnet",
                   help="kube-proxy: leave Services to kube-proxy (no service rules, no health-check "
                        "listeners; Calico's default with eBPF off); podnet (default): the agent's proxy")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("kubelet", help=argparse.SUPPRESS)
    p.add_argument("--state", required=True, help="the lab's state directory")
    p.set_defaults(func=cmd_kubelet)


def _parse_label(s: str) -> tuple[str, str]:
    key, eq, value = s.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"{s!r}: expected KEY=VALUE")
    return key, value


def _with_kind(args: argparse.Namespace) -> argparse.Namespace:
    # `up --datastore sqlite|etcd` names a backend, not a URL: keep the global option apart
    args.datastore = args.datastore_kind
    return args
