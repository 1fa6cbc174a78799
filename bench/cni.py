#!/usr/bin/env python3
"""ADD then DEL of N pods: podnet-cni + podnet-ipam (SQLite) vs the reference bridge +
host-local, side by side on this machine, IPv4 and dual stack.

Both are driven identically (podnet.cni.runtime: `ip netns exec <node> <plugin>`, env +
config on stdin, cniVersion 1.0.0, which Debian's reference plugins speak). Pod
namespaces are made before the clock starts. podnet runs three ways: with the node daemon
through the thin `python -I -S` launchers (cni/bin, what the lab uses), with the daemon
through the venv's console scripts, and without a daemon (in-process). Prints p50/p90/max per verb and the
podnet/reference ratios, then one JSON line. Needs root; uses only `pnb-cni-<random id>-*` namespaces.

    sudo .venv/bin/python bench/cni.py [--pods 100] [--modes ipv4,dual]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from podnet.api.objects import from_dict
from podnet.cni import daemon as cnid
from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.datastore.sqlite import SqliteDatastore


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def stats(xs: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(xs) * 1000, "p90": pct(xs, 90) * 1000, "max": max(xs) * 1000}


def netns(name: str, made: list[str]) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    made.append(name)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


class Side:
    """One plugin setup on its own node namespace, with its pods' namespaces made up front."""

    def __init__(self, label: str, netconf: dict, pods: int, tag: str, made: list[str],
                 cni_path: str, daemon: bool = False):
        self.netconf = netconf
        self.cni_path = cni_path
        self.label = label
        self.node = netns(f"pnb-cni-{tag}-{label}-n", made)
        self.names = [netns(f"pnb-cni-{tag}-{label}-{i}", made) for i in range(pods)]
        self.proc = cnid.start(self.node) if daemon else None
        self.adds: list[float] = []
        self.dels: list[float] = []
        self.results: list[dict] = []

    def add(self, i: int) -> None:
        t = time.perf_counter()
        self.results.append(runtime.add(self.netconf, f"{self.label}-{i}", f"/var/run/netns/{self.names[i]}",
                                        "eth0", self.cni_path, node_netns=self.node))
        self.adds.append(time.perf_counter() - t)

    def delete(self, i: int) -> None:
        t = time.perf_counter()
        runtime.delete(self.netconf, f"{self.label}-{i}", f"/var/run/netns/{self.names[i]}", "eth0", self.cni_path,
                       node_netns=self.node, prev_result=self.results[i])
        self.dels.append(time.perf_counter() - t)

    def stats(self) -> dict[str, dict]:
        return {"ADD": stats(self.adds), "DEL": stats(self.dels)}

    def close(self) -> None:
        if self.proc is not None:
            cnid.stop(self.proc)


def run_sides(sides: list[Side], pods: int) -> None:
    """Interleaved, pod by pod, so that load from elsewhere on the machine hits every side alike."""
    for i in range(pods):
        for s in sides:
            s.add(i)
    for i in range(pods):
        for s in sides:
            s.delete(i)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--modes", default="ipv4,dual")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/cni.py needs root (network namespaces)", file=sys.stderr)
        return 2
    tag = secrets.token_hex(3)
    # thin: cni/bin's `python -I -S` launchers first (what the lab uses); full: the venv's
    # console scripts (`podnet-cni` with site, which the launchers exec when no daemon answers)
    thin_path = runtime.default_cni_path()
    full_path = os.pathsep.join(p for p in thin_path.split(os.pathsep) if not p.endswith("/cni/bin"))
    tmp = tempfile.mkdtemp(prefix="pn-cnib-")
    made: list[str] = []
    out: dict[str, dict] = {}
    try:
        for mode in args.modes.split(","):
            dual = mode == "dual"
            url = f"sqlite:///{tmp}/{mode}.db"
            store = SqliteDatastore(url)
            store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool",
                                    "metadata": {"name": "v4"}, "spec": {"cidr": "10.244.0.0/16"}}))
            if dual:
                store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool",
                                        "metadata": {"name": "v6"}, "spec": {"cidr": "fd00:10:244::/56"}}))
            store.close()
            ours = make_netconf(url, "bench", dual, cni_version="1.0.0")
            ranges = [[{"subnet": "10.85.0.0/16"}]] + ([[{"subnet": "fd00:85::/64"}]] if dual else [])
            ref = {"cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": f"pnbr{tag}",
                   "isGateway": True, "ipam": {"type": "host-local", "dataDir": f"{tmp}/hl-{mode}",
                                               "ranges": ranges}}
            sides = [Side(f"r{mode[0]}", ref, args.pods, tag, made, full_path),
                     Side(f"d{mode[0]}", ours, args.pods, tag, made, thin_path, daemon=True),
                     Side(f"c{mode[0]}", ours, args.pods, tag, made, full_path, daemon=True),
                     Side(f"p{mode[0]}", ours, args.pods, tag, made, full_path)]
            try:
                run_sides(sides, args.pods)
            finally:
                for side in sides:
                    side.close()
            ref_s, our_d, our_c, our_s = (side.stats() for side in sides)
            ratio = {v: our_d[v]["p50"] / ref_s[v]["p50"] for v in ("ADD", "DEL")}
            ratio_c = {v: our_c[v]["p50"] / ref_s[v]["p50"] for v in ("ADD", "DEL")}
            ratio_np = {v: our_s[v]["p50"] / ref_s[v]["p50"] for v in ("ADD", "DEL")}
            out[mode] = {"podnet": our_d, "podnet_console_script": our_c, "podnet_no_daemon": our_s,
                         "reference": ref_s, "ratio": ratio, "ratio_console_script": ratio_c,
                         "ratio_no_daemon": ratio_np}
            print(f"\n{mode}: {args.pods} pods, milliseconds")
            print(f"{'':22}{'ADD p50':>9}{'p90':>8}{'max':>8}{'DEL p50':>10}{'p90':>8}{'max':>8}")
            for name, st in (("podnet (daemon, thin)", our_d), ("podnet (daemon, full)", our_c),
                             ("podnet (no daemon)", our_s), ("reference", ref_s)):
                a, d = st["ADD"], st["DEL"]
                print(f"{name:22}{a['p50']:9.1f}{a['p90']:8.1f}{a['max']:8.1f}{d['p50']:10.1f}{d['p90']:8.1f}{d['max']:8.1f}")
            for name, r in (("ratio (daemon, thin)", ratio), ("ratio (daemon, full)", ratio_c),
                            ("ratio (no daemon)", ratio_np)):
                print(f"{name:22}{r['ADD']:9.2f}{'':16}{r['DEL']:10.2f}")
            print("(podnet / reference, p50; <= 1.0 is the goal)")
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"bench": "cni", "pods": args.pods, "results": out}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
