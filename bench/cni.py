#!/usr/bin/env python3
"""ADD then DEL of N pods: podnet-cni + podnet-ipam (SQLite) vs the reference bridge +
host-local, side by side on this machine, IPv4 and dual stack.

Every side is driven identically (podnet.cni.runtime: `ip netns exec <node> <plugin>`, env
+ config on stdin, cniVersion 1.0.0, which Debian's reference plugins speak); pod
namespaces are made before the clock starts. The sides: the reference; podnet with the
node daemon through the thin `python -I -S` launchers (cni/bin, what the lab uses); podnet
with the daemon through the venv's console scripts; podnet without a daemon (the console
scripts doing the work in-process).

What each figure includes (issue 12 §4):
- ADD: from the runtime's exec of the first plugin to its answer.
- DEL: until the link is really gone. The daemon answers a DEL once the link is unlisted
  for everyone and leaves the kernel's teardown (RCU barrier, last references, ~15-20 ms)
  to a helper thread; the clock here runs on until that thread has the kernel's answer
  (the daemon's `settle` request), as the reference's own `ip link del` waits for it.
  "DEL answered" is the time to the daemon's answer alone.
- CPU per call: the plugin processes (`ip netns exec`, launchers, plugins, their
  children: RUSAGE_CHILDREN) plus, for daemon sides, what the daemon spent meanwhile
  (/proc/<pid>/stat), per pod.
- Daemon start-up: from spawning it to its "ready" line (once per node, before the clock).

Two passes per run, each with fresh namespaces: *interleaved* (every side's node and pods
exist together; pod i is added on each side in turn, then deleted in turn, so load from
elsewhere hits all sides alike) and *alone* (one side at a time, with only its own node
and pods in existence, sides in a rotating order), plus *crowded*: the reference alone beside as many idle
namespaces as the other sides would have, to tell the cost of their mere existence
(every `ip netns exec` unshares the mount namespace, copying every /var/run/netns mount)
from that of their activity (the daemon's teardown threads: gone now that DEL waits for
them; the no-daemon side's processes). Median and range over --runs of each run's p50;
load average before and after in the JSON line. Needs root; uses only `pnb-cni-<random id>-*` namespaces.

    sudo .venv/bin/python bench/cni.py [--pods 100] [--runs 3] [--modes ipv4,dual]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from report import load, spread  # bench/report.py (the script's own directory)

from podnet.api.objects import from_dict
from podnet.cni import daemon as cnid
from podnet.cni import runtime
from podnet.cni.client import SOCKET_NAME, encode_request
from podnet.cni.config import make_netconf
from podnet.datastore.sqlite import SqliteDatastore

SIDES = ("reference", "daemon_thin", "daemon_full", "no_daemon")
LABELS = {"reference": "reference (bridge + host-local)", "daemon_thin": "podnet, daemon, thin",
          "daemon_full": "podnet, daemon, full", "no_daemon": "podnet, no daemon"}
CLK = os.sysconf("SC_CLK_TCK")
_libc = ctypes.CDLL(None, use_errno=True)


def netns(name: str, made: list[str]) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    made.append(name)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def settle(node: str) -> None:
    """Ask the node's daemon to wait for its pending link deletions (see daemon.py). The
    socket is made inside the node's namespace (abstract names are per namespace) by this
    thread entering it for the socket() call only."""
    target = os.open(f"/var/run/netns/{node}", os.O_RDONLY)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), f"setns {node}")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        finally:
            if _libc.setns(home, 0x40000000) != 0:
                os._exit(70)
    finally:
        os.close(target)
        os.close(home)
    with s:
        s.connect(SOCKET_NAME)
        s.sendall(encode_request("settle", {}, b""))
        s.shutdown(socket.SHUT_WR)
        reply = s.recv(64)
    if not reply or reply[0] != 0:
        raise RuntimeError(f"settle in {node} failed: {reply!r}")


class Side:
    """One plugin setup on its own node namespace, with its pods' namespaces made up front."""

    def __init__(self, kind: str, netconf: dict, cni_path: str, url: str, mode: str,
                 pods: int, tag: str, made: list[str]):
        self.kind, self.netconf, self.cni_path = kind, netconf, cni_path
        self.label = f"{mode[0]}{SIDES.index(kind)}"
        self.node = netns(f"pnb-cni-{tag}-{self.label}-n", made)
        self.names = [netns(f"pnb-cni-{tag}-{self.label}-{i}", made) for i in range(pods)]
        self.proc = None
        self.startup = None
        if kind.startswith("daemon"):
            t = time.perf_counter()
            self.proc = cnid.start(self.node, datastore=url)
            self.startup = time.perf_counter() - t
        self.adds: list[float] = []
        self.dels: list[float] = []
        self.dels_answer: list[float] = []
        self.cpu = {"ADD": 0.0, "DEL": 0.0}
        self.results: list[dict] = []

    def _daemon_cpu(self) -> float:
        return proc_cpu(self.proc.pid) if self.proc is not None else 0.0

    def add(self, i: int) -> None:
        c, d = children_cpu(), self._daemon_cpu()
        t = time.perf_counter()
        self.results.append(runtime.add(self.netconf, f"{self.label}-{i}", f"/var/run/netns/{self.names[i]}",
                                        "eth0", self.cni_path, node_netns=self.node))
        self.adds.append(time.perf_counter() - t)
        self.cpu["ADD"] += children_cpu() - c + self._daemon_cpu() - d

    def delete(self, i: int) -> None:
        c, d = children_cpu(), self._daemon_cpu()
        t = time.perf_counter()
        runtime.delete(self.netconf, f"{self.label}-{i}", f"/var/run/netns/{self.names[i]}", "eth0",
                       self.cni_path, node_netns=self.node, prev_result=self.results[i])
        answered = time.perf_counter() - t
        if self.proc is not None:
            settle(self.node)
        self.dels.append(time.perf_counter() - t)
        self.dels_answer.append(answered)
        self.cpu["DEL"] += children_cpu() - c + self._daemon_cpu() - d

    def figures(self) -> dict[str, float]:
        n = len(self.adds)
        out = {"ADD": statistics.median(self.adds) * 1000, "DEL": statistics.median(self.dels) * 1000,
               "DEL_answered": statistics.median(self.dels_answer) * 1000,
               "ADD_p90": sorted(self.adds)[int(0.9 * (n - 1))] * 1000,
               "DEL_p90": sorted(self.dels)[int(0.9 * (n - 1))] * 1000,
               "cpu_ADD": self.cpu["ADD"] / n * 1000, "cpu_DEL": self.cpu["DEL"] / n * 1000}
        if self.startup is not None:
            out["startup"] = self.startup * 1000
        return out

    def close(self) -> None:
        if self.proc is not None:
            cnid.stop(self.proc)


def drop(made: list[str], keep: int = 0) -> None:
    while len(made) > keep:
        subprocess.run(["ip", "netns", "del", made.pop()], capture_output=True)


def run_pass(kinds: list[str], confs: dict, pods: int, tag: str, made: list[str], interleaved: bool,
             idle: int = 0) -> dict[str, dict[str, float]]:
    """One pass with fresh namespaces; interleaved pod by pod, or each side alone (with
    `idle` empty namespaces beside it, as many as the other sides would have)."""
    out: dict[str, dict[str, float]] = {}
    groups = [kinds] if interleaved else [[k] for k in kinds]
    for group in groups:
        base = len(made)
        for i in range(idle):
            netns(f"pnb-cni-{tag}-idle-{i}", made)
        sides = [Side(k, *confs[k], pods=pods, tag=tag, made=made) for k in group]
        try:
            for i in range(pods):
                for s in sides:
                    s.add(i)
            for i in range(pods):
                for s in sides:
                    s.delete(i)
        finally:
            for s in sides:
                s.close()
            drop(made, base)  # the next side starts without these namespaces
        out.update({s.kind: s.figures() for s in sides})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="ipv4,dual")
    ap.add_argument("--sides", default=",".join(SIDES))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/cni.py needs root (network namespaces)", file=sys.stderr)
        return 2
    kinds = [k for k in args.sides.split(",") if k]
    tag = secrets.token_hex(3)
    # thin: cni/bin's `python -I -S` launchers first (what the lab uses); full: the venv's
    # console scripts (`podnet-cni` with site, which the launchers exec when no daemon answers)
    thin_path = runtime.default_cni_path()
    full_path = os.pathsep.join(p for p in thin_path.split(os.pathsep) if not p.endswith("/cni/bin"))
    tmp = tempfile.mkdtemp(prefix="pnb-cni-")
    made: list[str] = []
    load_before = load()
    t0 = time.monotonic()
    results: dict[str, dict] = {}
    try:
        for mode in args.modes.split(","):
            dual = mode == "dual"
            runs: dict[str, dict[str, list[dict[str, float]]]] = {"interleaved": {}, "alone": {}, "crowded": {}}
            for r in range(args.runs):
                url = f"sqlite:///{tmp}/{mode}-{r}.db"
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
                       "isGateway": True, "ipam": {"type": "host-local", "dataDir": f"{tmp}/hl-{mode}-{r}",
                                                   "ranges": ranges}}
                confs = {"reference": (ref, full_path, url, mode), "daemon_thin": (ours, thin_path, url, mode),
                         "daemon_full": (ours, full_path, url, mode), "no_daemon": (ours, full_path, url, mode)}
                order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # alone: a rotating order
                passes = [("interleaved", True, kinds, 0), ("alone", False, order, 0)]
                if "reference" in kinds and len(kinds) > 1:  # the reference alone among idle namespaces
                    passes.append(("crowded", False, ["reference"], (len(kinds) - 1) * (args.pods + 1)))
                for name, interleaved, ks, idle in passes:
                    for kind, figs in run_pass(ks, confs, args.pods, tag, made, interleaved, idle).items():
                        runs[name].setdefault(kind, []).append(figs)
            results[mode] = summarize(runs, kinds)
            print_mode(mode, args.pods, args.runs, results[mode], kinds)
    finally:
        drop(made)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"bench": "cni", "pods": args.pods, "runs": args.runs, "load_before": load_before,
                      "load_after": load(), "seconds": round(time.monotonic() - t0, 1),
                      "results": results}, separators=(",", ":")))
    return 0


def summarize(runs: dict, kinds: list[str]) -> dict:
    """Every figure as median/min/max over the runs; ratios to the reference run by run."""
    out: dict[str, dict] = {}
    for name, per_kind in runs.items():
        out[name] = {}
        for kind, figs in per_kind.items():
            out[name][kind] = {k: spread([f[k] for f in figs], 2) for k in figs[0]}
            if kind != "reference" and "reference" in per_kind:
                out[name][kind]["ratio"] = {
                    v: spread([f[v] / ref[v] for f, ref in zip(figs, per_kind["reference"])], 3)
                    for v in ("ADD", "DEL")}
    return out


def print_mode(mode: str, pods: int, nruns: int, res: dict, kinds: list[str]) -> None:
    print(f"\n{mode}: {pods} pods, {nruns} runs; p50 ms, median [min-max] over runs")
    for name in ("interleaved", "alone", "crowded"):
        if not res.get(name):
            continue
        print(f"  {name}:" + (" (the reference alone, beside the other sides' number of idle namespaces)"
                              if name == "crowded" else ""))
        print(f"    {'':32}{'ADD':>22}{'DEL (until gone)':>22}{'DEL answered':>22}{'CPU/ADD':>10}{'CPU/DEL':>10}")
        for kind in [k for k in kinds if k in res[name]]:
            f = res[name][kind]
            row = [show_spread(f["ADD"]), show_spread(f["DEL"]), show_spread(f["DEL_answered"])]
            print(f"    {LABELS[kind]:32}" + "".join(f"{x:>22}" for x in row)
                  + f"{f['cpu_ADD']['median']:10.1f}{f['cpu_DEL']['median']:10.1f}")
        for kind in [k for k in kinds if k in res[name]]:
            if "ratio" in res[name][kind]:
                r = res[name][kind]["ratio"]
                print(f"    ratio {LABELS[kind]:26}{show_spread(r['ADD'], '{:.2f}'):>22}"
                      f"{show_spread(r['DEL'], '{:.2f}'):>22}")
    starts = [res["alone"][k]["startup"] for k in kinds if "startup" in res["alone"][k]]
    if starts:
        print(f"  daemon start-up ms (spawn to ready): {show_spread(starts[0])}")


def show_spread(s: dict, fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"


if __name__ == "__main__":
    sys.exit(main())
