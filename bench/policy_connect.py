#!/usr/bin/env python3
"""Where a new TCP connection's extra latency under NetworkPolicy comes from: the node's
ruleset built up step by step between the same two pods, the steps interleaved (needs root).

bench/policy.py measures TCP connect latency between two pods through one node with the
1,000 policies over 2,000 pods loaded and without. This bench splits that difference; each
step adds one thing to the node's netns:

  none            no nftables table in the node (no netfilter hook, no conntrack)
  hooks           podnet's two forward base chains (priority filter+5/+10), empty
  conntrack       + `ct state established,related accept` in each: the netns now tracks
                  connections (a podnet node always does: the service proxy's NAT needs it)
  podnet-2-pods   podnet's policy ruleset for the two pods and the bench's two policies only
  podnet-1000     podnet's ruleset for 1,000 policies over 2,000 pods (bench/policy.py's)

Each round measures every step once, in rotated order (bench/policy.py's connect loop: median
and 10th percentile of `--connects` connect times and the client's CPU per connect, from a
fresh client process); figures are the median and range over `--rounds`. With `--perf`, the
client's CPU per connection is split by kernel function group (conntrack, nft rule
evaluation, set lookups, hook entry) from a perf profile of the connect loop; with
`--variants`, candidate rule layouts are measured as extra steps (only here: the renderer
is unchanged). With `--trace`, one connection's SYN and SYN-ACK walks through the full
ruleset are printed (nft trace: the rules that matched). Prints a table, the ratio of each
step to `none` and to `conntrack`, and one JSON line with the load average before and after.

    sudo .venv/bin/python bench/policy_connect.py [--rounds 5] [--connects 2000] [--perf] [--variants] [--trace]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import policy as pb  # bench/policy.py: the same pods, policies, topology and connect loop
from policy_scale import scale_objects

from podnet.agent.policy_role import PolicyRole
from podnet.api.objects import Namespace
from podnet.calc.model import ClusterState
from podnet.dataplane.nft.runner import NftRunner
from report import load, ratios, show, spread

TABLE = "inet podnet-pol"
BASE = (f"add table {TABLE}\ndelete table {TABLE}\nadd table {TABLE}\n"
        f"add chain {TABLE} egress {{ type filter hook forward priority filter + 5 ; policy accept ; }}\n"
        f"add chain {TABLE} ingress {{ type filter hook forward priority filter + 10 ; policy accept ; }}\n")
CT = (f"add rule {TABLE} egress ct state established,related accept\n"
      f"add rule {TABLE} ingress ct state established,related accept\n")


def namespaces() -> list[Namespace]:
    return [Namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}) for n in ("ns0", "ns1")]


def podnet_script(objs: list) -> str:
    return PolicyRole("node-1").nft_fragment(ClusterState.from_objects(objs, node_name="node-1"), None)


SPOOF = {4: "iifname @pod-ifaces iifname . ip saddr != @pod-addr4 counter name spoofed drop",
         6: "iifname @pod-ifaces iifname . ip6 saddr != @pod-addr6 counter name spoofed drop"}
# the same test, the pair first: a pod's own packet costs one lookup (the pair hits), and
# the family test nft puts before `ip6 saddr` ends the IPv6 rule at once for IPv4 packets
SPOOF_PAIR_FIRST = {4: "iifname . ip saddr != @pod-addr4 iifname @pod-ifaces counter name spoofed drop",
                    6: "iifname . ip6 saddr != @pod-addr6 iifname @pod-ifaces counter name spoofed drop"}


def variant(script: str, old: dict[int, str], new: dict[int, str]) -> str:
    for fam in (4, 6):
        if script.count(old[fam]) != 1:
            raise RuntimeError(f"the policy renderer's anti-spoofing rule changed; update {__file__}")
        script = script.replace(old[fam], new[fam])
    return script


def steps(annotated: list, variants: bool) -> dict[str, str]:
    drop = f"add table {TABLE}\ndelete table {TABLE}\n"
    full = podnet_script(scale_objects() + annotated + pb.bench_policies())
    out = {"none": drop, "hooks": BASE, "conntrack": BASE + CT,
           "podnet-2-pods": podnet_script(annotated + namespaces() + pb.bench_policies()),
           "podnet-1000": full}
    if variants:
        out["1000-pair-first"] = variant(full, SPOOF, SPOOF_PAIR_FIRST)
        # a measurement, not a candidate: established packets would skip the anti-spoofing
        # test, so a pod could inject forged packets into another pod's tracked UDP flows
        ct = "add rule inet podnet-pol egress ct state established,related accept\n"
        if full.count(ct) != 1:
            raise RuntimeError(f"the policy renderer's egress chain changed; update {__file__}")
        first = "add rule inet podnet-pol egress " + SPOOF[4]
        out["1000-ct-first"] = full.replace(ct, "").replace(first + "\n", ct + first + "\n")
    return out


PERIOD_NS = 20_000  # one perf sample per 20 µs of CPU
# kernel symbols by what they do; the first group whose pattern matches takes the symbol
PERF_GROUPS = [
    ("conntrack", re.compile(r"^_*nf_(conntrack|ct)_?|^init_conntrack|^hash_conntrack|^nf_confirm|"
                             r"^ipv[46]_conntrack|^nf_nat")),
    ("set lookups", re.compile(r"^nft_(set_do_lookup|rhash|hash|bitmap|rbtree)|pipapo")),
    ("rule evaluation", re.compile(r"^nft_")),
    ("hook entry", re.compile(r"^nf_hook_slow")),
]


def connect(client_ns: str, n: int, perf: bool) -> dict[str, float]:
    """Median and 10th percentile of n connect times, and the client's CPU time (user+system)
    per connect, in µs. With `perf`, also the CPU the client's context spends per connection
    in each PERF_GROUPS group (the kernel forwards the SYN, SYN-ACK, ACK and the client's FIN
    through the node in the sender's softirq: mostly the client's own context)."""
    argv = pb.connect_argv(client_ns, pb.SERVER_IP, n)
    if not perf:
        return pb.connect(client_ns, pb.SERVER_IP, n)
    with tempfile.NamedTemporaryFile(prefix="pnb-perf-", suffix=".data") as data:
        got = json.loads(pb.topo.sh("perf", "record", "-q", "-e", "cpu-clock", "-c", str(PERIOD_NS),
                                    "-o", data.name, "--", *argv).stdout)
        rep = pb.topo.sh("perf", "report", "-i", data.name, "--stdio", "--no-children", "--sort", "sym",
                         "-n", "--percent-limit", "0", "-g", "none").stdout
    us = {g: 0.0 for g, _ in PERF_GROUPS}
    for m in re.finditer(r"^\s*[\d.]+%\s+(\d+)\s+\[k\]\s+(\S+)", rep, re.M):
        group = next((g for g, rx in PERF_GROUPS if rx.search(m.group(2))), None)
        if group:
            us[group] += int(m.group(1)) * PERIOD_NS / 1000 / (n + pb.WARM_UP)
    return {**got, **{f"perf {g}": v for g, v in us.items()}}


def trace_syn(node: str, client_ns: str, nft: NftRunner) -> str:
    """The walk of one connection's SYN and SYN-ACK through the loaded ruleset (nft monitor
    trace; nft lists only the rules that matched). The monitor first reads the whole ruleset
    (seconds at 3 MB), so connects are repeated until its trace shows up."""
    nft.apply("add table inet pnb-trace\nadd chain inet pnb-trace pre { type filter hook prerouting priority -350 ; }\n"
              f"add rule inet pnb-trace pre ip saddr {pb.CLIENT_IP} tcp flags syn meta nftrace set 1\n"
              f"add rule inet pnb-trace pre ip daddr {pb.CLIENT_IP} tcp flags syn meta nftrace set 1\n")
    with tempfile.NamedTemporaryFile("w+", prefix="pnb-trace-") as f:
        mon = subprocess.Popen(["ip", "netns", "exec", node, "stdbuf", "-oL", "nft", "monitor", "trace"],
                               stdout=f, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "podnet-pol" not in open(f.name).read():
                pb.topo.nsx(client_ns, sys.executable, "-c",
                            f"import socket; socket.create_connection(('{pb.SERVER_IP}', 80), timeout=2).close()")
                time.sleep(1)
            time.sleep(1)
        finally:
            mon.terminate()
            mon.wait(timeout=5)
            nft.apply("delete table inet pnb-trace\n")
        lines = [ln for ln in open(f.name).read().splitlines() if " inet podnet-pol " in ln]
    ids = list(dict.fromkeys(ln.split()[2] for ln in lines))[:2]  # the first SYN and its SYN-ACK
    return "\n".join(ln for ln in lines if ln.split()[2] in ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connects", type=int, default=300)
    ap.add_argument("--trace", action="store_true", help="print the SYN's walk through the full ruleset")
    ap.add_argument("--perf", action="store_true", help="attribute the client's CPU per connection (perf)")
    ap.add_argument("--variants", action="store_true", help="also candidate rule layouts (see SPOOF_PAIR_FIRST)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    load_before = load()
    server = pb.real_pod("ns0", "server", {"app": "app-0", "tier": "tier0", "role": "server"},
                         pb.SERVER_IP, "fd00:10:244::100:1")
    client = pb.real_pod("ns1", "client", {"app": "app-1", "tier": "tier1", "role": "client"},
                         pb.CLIENT_IP, "fd00:10:244::100:2")
    t, annotated = pb.topo.build(pb.PREFIX, [server, client])
    got: dict[str, list[float]] = {}
    try:
        nft, cns = NftRunner(t.node), t.pod_netns("ns1/client")
        scripts = steps(annotated, args.variants)
        names = list(scripts)
        for rnd in range(args.rounds):
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                nft.apply(scripts[name])
                for k, v in connect(cns, args.connects, args.perf).items():
                    got.setdefault(f"{name}/{k}", []).append(v)
            print(f"round {rnd + 1}: " + "  ".join(f"{k} {v[-1]:.1f}" for k, v in got.items()
                                                   if k.endswith("/median")), file=sys.stderr)
        walk = ""
        if args.trace:
            nft.apply(scripts["podnet-1000"])
            walk = trace_syn(t.node, cns, nft)
            print(walk, file=sys.stderr)
    finally:
        t.destroy()
    stats = [k for k in got if not k.split("/")[1].startswith("perf")]
    print(f"{'step/statistic':<24}{'µs':>24}{'/ none':>22}{'/ conntrack':>22}")
    for key in stats:
        vals, stat = got[key], key.split("/")[1]
        print(f"{key:<24}{show(vals, '{:.1f}'):>24}{show(ratios(vals, got[f'none/{stat}'])):>22}"
              f"{show(ratios(vals, got[f'conntrack/{stat}'])):>22}")
    perf = [k for k in got if k.split("/")[1].startswith("perf")]
    if perf:
        print("CPU per connection in the client's context, by kernel function group (perf, µs):")
        for key in perf:
            print(f"  {key:<40}{show(got[key], '{:.2f}'):>26}")
    print(json.dumps({"bench": "policy_connect", "rounds": args.rounds, "connects_per_measure": args.connects,
                      "us": {k: spread(v, 2) for k, v in got.items()},
                      "over_none": {k: spread(ratios(got[k], got[f"none/{k.split('/')[1]}"]), 3) for k in stats},
                      "over_conntrack": {k: spread(ratios(got[k], got[f"conntrack/{k.split('/')[1]}"]), 3)
                                         for k in stats},
                      "syn_trace_lines": len(walk.splitlines()),
                      "loadavg_before": load_before, "loadavg_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
