#!/usr/bin/env python3
"""Lab scale: a 4-node lab, 200 pods (one Deployment); time to all Ready, pods/s (and
whether it slows as pods accumulate: the rate over the first and the second half of the
pods, and over each tenth: `pods_per_s_by_tenth`), peak memory of every lab process (sum
of RSS), teardown time. Needs root.

The reference, run alternately with the lab (`--runs` each, the order alternating): the
floor (bench/lab_raw.py): the same number of pod namespaces on as many node namespaces,
each with its veth pair, addresses and routes made directly with `ip` (a handful of
processes), and TCP/UDP 8080 listening in every pod (one helper process). A real cluster
manager (kind, k3s) cannot run side by side on this machine without containers or VMs, so
the floor says what the kernel work itself costs, and lab/floor what podnet's control plane
(datastore, scheduling, IPAM, CNI calls, status writes, agents, DNS) adds to it.
Goals (issue 22, for `--nodes 10 --pods 1000 --dual-stack`): all Ready < 30 s (< 45 s on
etcd), < 3 GiB in all, teardown < 15 s. Figures: median and range over the runs. Prints a
table, the ratios, and one JSON line with the load average (before and after the whole
invocation, and the 1-minute one at the start and end of each lab run: `load1_start`,
`load1_end`).

    sudo .venv/bin/python bench/lab_scale.py [--nodes 4] [--pods 200] [--runs 3] [--dual-stack] [--datastore etcd]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lab_raw import RawPods
from report import load, ratios, show, spread


def podnet(env: dict[str, str], *args: str, input: str | None = None) -> str:
    cp = subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], env=env, input=input,
                        capture_output=True, text=True)
    if cp.returncode != 0:
        raise SystemExit(f"podnet {' '.join(args)} failed: {cp.stderr or cp.stdout}")
    return cp.stdout


def lab_pids(lab_dir: Path, name: str) -> set[int]:
    pids = set()
    for f in (lab_dir / "pids").glob("*.pid"):
        try:
            pids.add(int(f.read_text()))
        except (OSError, ValueError):
            pass
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(f"pn-{name}-"):
            got = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            pids |= {int(x) for x in got.split() if x.isdigit()}
    return pids


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemSampler(threading.Thread):
    def __init__(self, lab_dir: Path, name: str):
        super().__init__(daemon=True)
        self.lab_dir, self.name = lab_dir, name
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = lab_pids(self.lab_dir, self.name)
            self.peak = max(self.peak, sum(rss_kib(p) for p in pids))
            self.stop.wait(0.25)


def deployment(n: int) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: scale}}
spec:
  replicas: {n}
  selector: {{matchLabels: {{app: scale}}}}
  template:
    metadata: {{labels: {{app: scale}}}}
    spec:
      containers:
      - name: srv
        image: podnet/serve
        ports: [{{containerPort: 8080}}, {{containerPort: 8080, protocol: UDP}}]
"""


def lab_run(a, name: str) -> dict[str, float]:
    """One lab: up, the Deployment until every pod is Ready, teardown."""
    from podnet.datastore.interface import open_datastore
    home = tempfile.mkdtemp(prefix="podnet-bench-")
    env = {**os.environ, "PODNET_HOME": home}
    env.pop("PODNET_DATASTORE", None)
    lab_dir = Path(home) / "labs" / name
    up_args = ["up", "--name", name, "--nodes", str(a.nodes), "--datastore", a.datastore] + \
        (["--dual-stack"] if a.dual_stack else [])
    sampler = MemSampler(lab_dir, name)
    result: dict[str, float] = {}
    result["load1_start"] = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        podnet(env, *up_args)
        result["up_s"] = time.monotonic() - t0
        sampler.start()
        store = open_datastore((lab_dir / "datastore.url").read_text().strip())
        t1 = time.monotonic()
        podnet(env, "apply", "-f", "-", input=deployment(a.pods))
        ready, half_at = 0, None
        tenths: list[float] = []  # when each further tenth of the pods was Ready
        while time.monotonic() - t1 < a.timeout:
            pods = store.list("Pod", "default").items  # not the cluster DNS pods
            ready = sum(1 for p in pods if p.ready and p.labels.get("app") == "scale")  # type: ignore[attr-defined]
            if half_at is None and ready >= a.pods // 2:
                half_at = time.monotonic() - t1
            while len(tenths) < 10 and ready >= a.pods * (len(tenths) + 1) // 10:
                tenths.append(time.monotonic() - t1)
            if ready >= a.pods:
                break
            time.sleep(0.2)
        t_ready = time.monotonic() - t1
        store.close()
        if ready < a.pods:
            raise SystemExit(f"only {ready}/{a.pods} pods Ready after {a.timeout} s")
        time.sleep(0.5)
        sampler.stop.set()
        sampler.join()
        half = half_at or t_ready
        result.update({"all_ready_s": t_ready, "pods_per_s": ready / t_ready,
                       "pods_per_s_first_half": (a.pods // 2) / half,
                       "pods_per_s_second_half": (a.pods - a.pods // 2) / max(t_ready - half, 1e-3),
                       "peak_rss_mib": sampler.peak / 1024})
        for i, (t_a, t_b) in enumerate(zip([0.0] + tenths, tenths)):
            result[f"pods_per_s_tenth_{i + 1}"] = (a.pods // 10) / max(t_b - t_a, 1e-3)
    finally:
        sampler.stop.set()
        t2 = time.monotonic()
        subprocess.run([sys.executable, "-m", "podnet.cli.main", "down", "--name", name, "--force"],
                       env=env, capture_output=True)
        result["teardown_s"] = time.monotonic() - t2
        result["load1_end"] = os.getloadavg()[0]
        subprocess.run(["rm", "-rf", home])
    return result


def raw_run(a) -> dict[str, float]:
    raw = RawPods(f"pnb-lab-{secrets.token_hex(3)}", a.nodes, a.pods, a.dual_stack)
    try:
        took = raw.build()
        rss = raw.helper_rss_mib()
    finally:
        down = raw.teardown()
    return {"all_ready_s": took, "pods_per_s": a.pods / took, "peak_rss_mib": rss, "teardown_s": down}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dual-stack", action="store_true")
    ap.add_argument("--datastore", choices=("sqlite", "etcd"), default="sqlite")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    load_before = load()
    runs: dict[str, list[dict[str, float]]] = {"lab": [], "floor": []}
    for r in range(a.runs):
        sides = [("lab", lambda: lab_run(a, f"b{secrets.token_hex(3)}")), ("floor", lambda: raw_run(a))]
        for side, fn in (sides if r % 2 == 0 else sides[::-1]):
            runs[side].append(fn())
            print(f"run {r + 1} {side}: " + "  ".join(f"{k} {v:.2f}" for k, v in runs[side][-1].items()),
                  file=sys.stderr)
    report(runs, a, load_before)
    return 0


def report(runs: dict[str, list[dict[str, float]]], a, load_before: list[float]) -> None:
    goals = {"all_ready_s": 45 if a.datastore == "etcd" else 30, "peak_rss_mib": 3072, "teardown_s": 15}
    print(f"{a.nodes} nodes, {a.pods} pods{', dual stack' if a.dual_stack else ''}, {a.datastore}, {a.runs} runs")
    for side, rs in runs.items():
        for k in rs[0]:
            goal = goals.get(k) if side == "lab" else None
            verdict = "" if goal is None else f"  goal < {goal}: " + (
                "holds" if max(r[k] for r in rs) < goal else "MISSED in some runs")
            print(f"  {side:6s} {k:24s} {show([r[k] for r in rs], '{:.2f}'):>28s}{verdict}")
    rat = {k: ratios([r[k] for r in runs["lab"]], [r[k] for r in runs["floor"]])
           for k in ("all_ready_s", "teardown_s")}
    for k, v in rat.items():
        print(f"  lab/floor {k:20s} {show(v, '{:.2f}'):>28s}")
    print(json.dumps({"bench": "lab_scale", "nodes": a.nodes, "pods": a.pods, "dual_stack": a.dual_stack,
                      "datastore": a.datastore, "runs": a.runs,
                      "figures": {side: {k: spread(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()},
                      "ratios_lab_over_floor": {k: spread(v, 3) for k, v in rat.items()}, "goals": goals,
                      "loadavg_before": load_before, "loadavg_after": load()}))


if __name__ == "__main__":
    sys.exit(main())
