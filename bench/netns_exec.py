#!/usr/bin/env python3
"""What the mere existence of other network namespaces costs an `ip netns exec`.

Every CNI call in bench/cni.py goes through one `ip netns exec <node>`, which unshares the
mount namespace (copying every mount, /var/run/netns/* included) before it enters the
node. This times `ip netns exec <ns> true` with only one namespace of ours, then with
--extra more (as many as bench/cni.py's other sides have), in alternating blocks, so
load from elsewhere hits both alike. Median and range over --rounds of each block's
median, load average in the JSON line. Needs root; uses only `pnb-nsx-<random id>-*`.

    sudo .venv/bin/python bench/netns_exec.py [--extra 303] [--rounds 10] [--calls 30]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time

from report import load, ratios, show, spread  # bench/report.py (the script's own directory)


def block(ns: str, calls: int) -> float:
    xs = []
    for _ in range(calls):
        t = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "true"], check=True)
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", type=int, default=303)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/netns_exec.py needs root (network namespaces)", file=sys.stderr)
        return 2
    tag = secrets.token_hex(3)
    base = f"pnb-nsx-{tag}-base"
    made = [base]
    subprocess.run(["ip", "netns", "add", base], check=True)
    few: list[float] = []
    many: list[float] = []
    before = load()
    try:
        for _ in range(args.rounds):
            few.append(block(base, args.calls))
            for i in range(args.extra):
                made.append(f"pnb-nsx-{tag}-{i}")
                subprocess.run(["ip", "netns", "add", made[-1]], check=True)
            many.append(block(base, args.calls))
            while len(made) > 1:
                subprocess.run(["ip", "netns", "del", made.pop()], check=True)
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    print(f"ip netns exec, ms: alone {show(few, '{:.2f}')}, with {args.extra} more namespaces "
          f"{show(many, '{:.2f}')}, ratio {show(ratios(many, few), '{:.2f}')}; "
          f"slower in {sum(m > f for m, f in zip(many, few))} of {args.rounds} rounds")
    print(json.dumps({"bench": "netns_exec", "extra": args.extra, "rounds": args.rounds, "calls": args.calls,
                      "alone_ms": spread(few, 3), "crowded_ms": spread(many, 3),
                      "ratio": spread(ratios(many, few), 3), "load_before": before, "load_after": load()},
                     separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
