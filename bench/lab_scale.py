#!/usr/bin/env python3
"""Lab scale: a 4-node lab, 200 pods (one Deployment); time to all Ready, pods/s, peak
memory of every lab process (sum of RSS), teardown time. Needs root.

There is no reference implementation to run side by side on one machine without a VM
or containers (kind needs Docker), so the figures stand against the issue's goals:
200 pods Ready < 30 s, < 2 GiB in all, teardown < 10 s. Prints one JSON line at the end.

    sudo .venv/bin/python bench/lab_scale.py [--nodes 4] [--pods 200] [--dual-stack] [--datastore etcd]
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--dual-stack", action="store_true")
    ap.add_argument("--datastore", choices=("sqlite", "etcd"), default="sqlite")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    home = tempfile.mkdtemp(prefix="podnet-bench-")
    env = {**os.environ, "PODNET_HOME": home}
    env.pop("PODNET_DATASTORE", None)
    name = f"b{secrets.token_hex(3)}"
    lab_dir = Path(home) / "labs" / name
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from podnet.datastore.interface import open_datastore

    t0 = time.monotonic()
    up_args = ["up", "--name", name, "--nodes", str(a.nodes), "--datastore", a.datastore] + \
        (["--dual-stack"] if a.dual_stack else [])
    sampler = MemSampler(lab_dir, name)
    result: dict[str, object] = {}
    try:
        podnet(env, *up_args)
        t_up = time.monotonic() - t0
        sampler.start()
        store = open_datastore((lab_dir / "datastore.url").read_text().strip())
        t1 = time.monotonic()
        podnet(env, "apply", "-f", "-", input=deployment(a.pods))
        ready = 0
        while time.monotonic() - t1 < a.timeout:
            pods = store.list("Pod", "default").items  # not the cluster DNS pods
            ready = sum(1 for p in pods if p.ready and p.labels.get("app") == "scale")  # type: ignore[attr-defined]
            if ready >= a.pods:
                break
            time.sleep(0.2)
        t_ready = time.monotonic() - t1
        store.close()
        time.sleep(0.5)
        sampler.stop.set()
        sampler.join()
        result = {"nodes": a.nodes, "pods": a.pods, "ready": ready, "dual_stack": a.dual_stack,
                  "datastore": a.datastore,
                  "up_s": round(t_up, 2), "all_ready_s": round(t_ready, 2),
                  "pods_per_s": round(ready / t_ready, 1) if t_ready else None,
                  "peak_rss_mib": round(sampler.peak / 1024, 1)}
    finally:
        sampler.stop.set()
        t2 = time.monotonic()
        subprocess.run([sys.executable, "-m", "podnet.cli.main", "down", "--name", name, "--force"],
                       env=env, capture_output=True)
        result["teardown_s"] = round(time.monotonic() - t2, 2)
        subprocess.run(["rm", "-rf", home])
    goals = {"all_ready_s": 30, "peak_rss_mib": 2048, "teardown_s": 10}
    print(f"lab: {a.nodes} nodes up in {result.get('up_s')} s; {result.get('ready')}/{a.pods} pods Ready "
          f"in {result.get('all_ready_s')} s ({result.get('pods_per_s')} pods/s); peak memory of all lab "
          f"processes {result.get('peak_rss_mib')} MiB; teardown {result['teardown_s']} s")
    for k, goal in goals.items():
        v = result.get(k)
        print(f"  {k:14} {v!s:>8}  goal < {goal}  {'ok' if isinstance(v, (int, float)) and v < goal else 'MISSED'}")
    print(json.dumps({"bench": "lab_scale", **result, "goals": goals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
