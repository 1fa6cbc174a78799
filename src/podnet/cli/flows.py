"""`podnet flows`: what the kernel did to the traffic that really flowed (issue 18 §2), like
`hubble observe`. Asks every node's agent (inside the node's network namespace, as root)
for its recent flow records and merges them by time; `-f` follows live."""
from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from typing import Any

from podnet.agent import flow_query as flows
from podnet.agent.flow_server import query
from podnet.cli import context
from podnet.cli.errors import UserError


def node_namespaces(lab: str | None) -> list[tuple[str, str | None]]:
    """(node, netns) of every node of the lab; outside a lab, this namespace's agent."""
    name = lab or context.current_lab()
    if not name:
        return [("this node", None)]
    from podnet.lab.state import LabState
    from podnet.lab.topology import spec_from_dict
    meta = LabState(context.lab_dir(name)).read_meta()
    if not meta.get("spec"):
        raise UserError(f"lab {name}: no spec in its state (is it up?)")
    return [(n.name, n.netns) for n in spec_from_dict(meta["spec"]).nodes]


def _filter(args: argparse.Namespace) -> flows.Filter:
    return flows.Filter(None if args.all_namespaces else args.namespace, args.pod or "", args.src or "",
                        args.dst or "", args.port or 0, args.verdict or "", args.policy or "")


def cmd_flows(args: argparse.Namespace) -> int:
    try:
        since = flows.parse_since(args.since, time.time()) if args.since else 0.0
    except ValueError as e:
        raise UserError(str(e)) from None
    flt = _filter(args)
    nodes = node_namespaces(args.lab)
    streams, stats = [], []
    for node, ns in nodes:
        try:
            st, recs = query(ns, since, follow=False)
        except OSError as e:
            print(f"warning: node {node}: no flow recorder answered ({e})", file=sys.stderr)
            continue
        stats.append(st)
        streams.append(list(recs))
    out = [r for r in flows.merge_by_time(streams) if flt.match(r)]
    if args.output == "json":
        for r in out:
            sys.stdout.write(json.dumps(r) + "\n")
    else:
        for r in out:
            sys.stdout.write(flows.table_line(r) + "\n")
        lost = sum(int(s.get("lost", 0)) for s in stats)
        if lost:
            print(f"(lost: {lost} flow records, overwritten before they were read or no room)", file=sys.stderr)
        overruns = sum(int(s.get("overruns", 0)) for s in stats)
        if overruns:
            print(f"(the kernel's queue to the flow reader overflowed {overruns} times: "
                  "some flows were never seen)", file=sys.stderr)
    sys.stdout.flush()
    if args.follow:
        _follow(nodes, flt, args.output, time.time())
    return 0


def _follow(nodes: list[tuple[str, str | None]], flt: flows.Filter, output: str, since: float) -> None:
    """Live, in arrival order (records of one node are in order; nodes interleave as they come)."""
    q: queue.Queue[dict[str, Any]] = queue.Queue()

    def pump(ns: str | None) -> None:
        try:
            _, recs = query(ns, since, follow=True)
            for r in recs:
                q.put(r)
        except OSError:
            return
    for _, ns in nodes:
        threading.Thread(target=pump, args=(ns,), daemon=True).start()
    try:
        while True:
            r = q.get()
            if flt.match(r):
                sys.stdout.write((json.dumps(r) if output == "json" else flows.table_line(r)) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        return


def register(sub: Any) -> None:
    p = sub.add_parser("flows", help="recent flows and the kernel's verdict on each, from every node",
                       description="What the kernel did to real traffic: forwarded, dropped (which "
                                   "NetworkPolicy, or spoofed), rejected (no endpoints), with names, "
                                   "Service VIP and endpoint chosen, SNAT address. Needs root.")
    p.add_argument("-n", "--namespace", default="default", help="flows touching this namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--pod", help="flows from or to this pod (NAME or NS/NAME)")
    p.add_argument("--from", dest="src", help="source pod or IP")
    p.add_argument("--to", dest="dst", help="destination pod, Service or IP")
    p.add_argument("--port", type=int, help="destination port (before or after DNAT)")
    p.add_argument("--verdict", choices=flows.VERDICTS)
    p.add_argument("--policy", help="flows this NetworkPolicy allowed or isolated")
    p.add_argument("--since", help="only the last DURATION (30s, 5m, 2h)")
    p.add_argument("-f", "--follow", action="store_true", help="then follow live")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument("--lab", help="the lab (default: the current one)")
    p.set_defaults(func=cmd_flows)
