"""`podnet trace [-n NS] SRC DST[:PORT[/PROTO]]`: a packet's path hop by hop, predicted
from calc and the lab's state, then confirmed with a real traced packet (podnet.trace)."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from dataclasses import dataclass
from typing import Any

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.cli import context
from podnet.cli.errors import UserError

KINDS = ("Namespace", "Pod", "Service", "EndpointSlice", "NetworkPolicy", "ClusterNetworkPolicy", "Node", "IPPool",
         "IPAMBlock", "BGPConfiguration", "BGPPeer")


def _lab_facts(args: argparse.Namespace, state: Any) -> tuple[Any, bool]:
    """The lab's facts, and whether the lab exists on this machine (confirmable)."""
    from podnet.trace.facts import LabFacts, NodeFacts, from_spec
    name = args.lab or context.current_lab()
    if name:
        from podnet.lab.state import LabState
        from podnet.lab.topology import OUTSIDE_HOSTS, OUTSIDE_ZONE, spec_from_dict
        st = LabState(context.lab_dir(name))
        meta = st.read_meta()
        if meta.get("spec"):
            from podnet.lab.tor import node_bird_dir, router_bird_dir
            spec = spec_from_dict(meta["spec"])
            ctl: dict[str, str] = {}
            if spec.routing == "bgp":  # where BIRD says which session brought a route
                ctl = {n.netns: str(node_bird_dir(st, n.name) / "bird.ctl") for n in spec.nodes}
                ctl[spec.router_netns] = str(router_bird_dir(st) / "bird.ctl")
            return from_spec(spec, OUTSIDE_HOSTS, OUTSIDE_ZONE, ctl), True
    nodes = []
    for n in sorted(state.nodes, key=lambda n: n.name):
        ips = n.internal_ips
        v4 = next((a for a in ips if ":" not in a), "")
        v6 = next((a for a in ips if ":" in a), None)
        nodes.append(NodeFacts(n.name, f"<netns of node {n.name}>", v4, v6))
    return LabFacts(name or "?", tuple(nodes)), False


def _family(args: argparse.Namespace, host: str) -> int:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return 6 if args.ipv6 else 4


@dataclass
class TraceResult:
    """What `run_trace` gives other commands (`podnet demo`): the trace, and the kernel's
    confirmation as lines and as JSON (None when not asked; `ok` None when not possible)."""
    trace: Any
    lines: list[str] | None
    confirmation: dict[str, Any] | None

    @property
    def agreed(self) -> bool | None:
        return None if self.confirmation is None else self.confirmation.get("ok")

    def text(self) -> str:
        from podnet.trace import render
        return render.text(self.trace, self.lines)

    def json(self) -> str:
        from podnet.trace import render
        return render.to_json(self.trace, self.confirmation)


def run_trace(namespace: str, src_name: str, dst: str, *, ipv6: bool = False, endpoint: str | None = None,
              confirm: bool = True, lab: str | None = None, datastore: str | None = None) -> TraceResult:
    """`podnet trace` as a function. Raises UserError for bad input."""
    from podnet.calc.model import ClusterState
    from podnet.trace.path import predict
    from podnet.trace.resolve import TraceError, find_pod, parse_dest, resolve
    args = argparse.Namespace(datastore=datastore, lab=lab, ipv6=ipv6)
    store = context.open_store(args)
    try:
        state = ClusterState.from_objects(o for k in KINDS for o in store.list(k).items)
    finally:
        store.close()
    facts, have_lab = _lab_facts(args, state)
    try:
        src = find_pod(state, namespace, src_name)
        dest = parse_dest(dst)
        fam = _family(args, dest.text)
        target = resolve(state, src.namespace, dest.text, fam, facts.outside_names)
        t = predict(state, facts, src, target, dest.port, dest.proto, fam, endpoint=endpoint,
                    query=dest.text)
    except TraceError as e:
        raise UserError(str(e)) from None
    if not confirm:
        return TraceResult(t, None, None)
    if not have_lab or os.geteuid() != 0:
        why = "no lab on this machine" if not have_lab else "confirming needs root"
        return TraceResult(t, [f"not confirmed: {why} (prediction only)"], {"ok": None, "why": why})
    t, lines, js = _confirm(state, facts, src, target, dest, fam, t, endpoint)
    return TraceResult(t, lines, js)


def cmd_trace(args: argparse.Namespace) -> int:
    r = run_trace(args.namespace, args.src, args.dst, ipv6=args.ipv6, endpoint=args.endpoint,
                  confirm=not args.no_confirm, lab=args.lab, datastore=args.datastore)
    if args.output == "json":
        sys.stdout.write(r.json())
    elif sys.stdout.isatty():
        _print_styled(r.text())
    else:
        sys.stdout.write(r.text())
    return 3 if r.agreed is False else 0


STYLES = (("  MISMATCH", "bold red"), ("  => DELIVERED", "green"), ("  => ", "bold yellow"),
          ("REQUEST", "bold"), ("REPLY", "bold"), ("KERNEL CONFIRMATION", "bold"),
          ("  prediction and kernel agree", "bold green"))


def _print_styled(text: str) -> None:
    """The same text, with colour only where it helps the eye: outcomes and mismatches."""
    from rich.console import Console
    from rich.text import Text
    con = Console(highlight=False, soft_wrap=True)
    for line in text.splitlines():
        style = next((st for prefix, st in STYLES if line.startswith(prefix)), "")
        con.print(Text(line, style=style))


def _confirm(state: Any, facts: Any, src: Any, target: Any, dest: Any, fam: int, t: Any,
             endpoint: str | None) -> tuple[Any, list[str], dict[str, Any]]:
    from podnet.trace import confirm, kernel
    from podnet.trace.path import predict
    from podnet.trace.resolve import family_ip
    watched = [n.netns for n in facts.nodes] + [facts.router_netns, facts.outside_netns]
    pod_ns = src.annotations.get(NETNS_ANNOTATION, "")
    if not pod_ns:
        raise UserError(f"pod {src.namespace}/{src.name} has no network namespace yet")
    macs = kernel.read_macs([(ns, "") for ns in watched])
    # between racks the router forwards VXLAN packets whole: it is told to look inside them
    vxlan_in = [facts.router_netns] if len(facts.segments) > 1 else []
    obs = kernel.watch_and_send(watched, pod_ns, fam, family_ip(src.pod_ips, fam) or "", target.ip,
                                t.port, t.proto, vxlan_in=vxlan_in)
    obs.macs = macs
    chosen = confirm.kernel_endpoint(t, obs) or endpoint
    t = predict(state, facts.with_macs(macs), src, target, t.port, t.proto, fam, endpoint=chosen,
                sport=obs.sport, query=t.target)
    bgp_get = (lambda ns, dst: kernel.bgp_route(facts.bird_ctl.get(ns), ns, dst)) if facts.routing == "bgp" else None
    checks = confirm.compare(t, obs, kernel.route_get, set(watched), bgp_get)
    if target.dns_name:
        checks.insert(0, confirm.dns_check(target.dns_name, fam, target.ip,
                                           kernel.dns_lookup(pod_ns, target.dns_name, fam)))
    lines = []
    if t.chosen is not None:
        lines.append(f"the kernel's DNAT chose endpoint {t.chosen.ip}:{t.chosen.port}; the path above follows it")
    lines += [c.line for c in checks]
    bad = sum(not c.ok for c in checks)
    lines.append("prediction and kernel agree" if not bad else f"{bad} MISMATCH(ES): please report them")
    return t, lines, confirm.summary(checks) | {"outcome": obs.outcome, "sport": obs.sport}


def register(sub: Any) -> None:
    p = sub.add_parser("trace", help="a packet's path hop by hop: routes, NAT, policy, headers per layer",
                       description="Predict a packet's path from the cluster's state, then confirm it "
                                   "with a real packet traced by the kernel (nftables trace, ip route get).")
    p.add_argument("src", metavar="SRC", help="the source pod: POD or NS/POD")
    p.add_argument("dst", metavar="DST[:PORT[/PROTO]]",
                   help="a pod, a Service (name or virtual IP), a DNS name or an outside address")
    p.add_argument("-n", "--namespace", default="default", help="namespace of SRC (and of short names)")
    p.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 (when DST is a name)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--endpoint", help="follow this Service endpoint (default: the first; "
                                      "when confirming, the one the kernel chose)")
    p.add_argument("--no-confirm", action="store_true", help="prediction only: send no packet")
    p.add_argument("--lab", help="the lab (default: the current one)")
    p.set_defaults(func=cmd_trace)
