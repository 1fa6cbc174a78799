#!/usr/bin/env python3
"""Watch fan-out of podnet's datastore, SQLite next to etcd (issue 22, Datastore): with
`--objects` (10,000) pods in the store and `--watchers` (20) watcher PROCESSES (as a lab's
agents, kubelet and DNS pods each watch from their own process), the time from just before
a write to each watcher seeing its event, and what the watchers cost while nothing is
written.

Sides: SQLite; SQLite with its watchers polling as before the inotify wake-up
(`sqlite_poll`, the reference for that change); etcd. Per round, the sides in rotated order: `--samples` (30) pods created 50 ms apart by
this process; every watcher reports the monotonic clock (system-wide on Linux) at which
its watch yielded each one; latency = that - the time just before the create, over all
watchers x samples (p50, p99). Then `--idle` (5) seconds without writes: the CPU time the
watcher processes took (utime + stime from /proc), as a share of one core for all of
them together. Each watcher opens the store itself and watches from the revision before
the samples; the objects were written once, before the rounds (etcd at ~500 creates/s:
~20 s for 10,000). Prints a table and one JSON line with the load average before and after.

    .venv/bin/python bench/datastore_watch.py [--objects 10000] [--watchers 20] [--samples 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from podnet.api.objects import from_dict  # noqa: E402
from podnet.datastore.etcd_server import EtcdServer  # noqa: E402
from podnet.datastore.interface import open_datastore  # noqa: E402
from report import load, show, spread  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "bench", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}


def watcher(url: str, start: int, tag: str, want: int, out: "mp.Queue[tuple[str, float]]",
            ready: "mp.Queue[int]") -> None:
    if "poll" in tag:   # the SQLite store as it was before the wake-up: its watchers poll
        from podnet.datastore import sqlite_wake
        sqlite_wake.subscribe = lambda *args: False
    store = open_datastore(url)
    ready.put(os.getpid())
    seen = 0
    for ev in store.watch(start, kinds=("Pod",)):
        if ev.object.name.startswith(tag):
            out.put((ev.object.name, time.monotonic()))
            seen += 1
            if seen == want:
                break
    # stay, watching, for the idle measurement: the parent ends us
    for _ in store.watch(store.revision(), kinds=("Pod",)):
        pass


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def one_side(url: str, tag: str, watchers: int, samples: int, idle: float) -> dict[str, float]:
    store = open_datastore(url)
    start = store.revision()
    ctx = mp.get_context("fork")
    out, ready = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=watcher, args=(url, start, tag, samples, out, ready), daemon=True)
             for _ in range(watchers)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=60)
        time.sleep(1.0)   # every watch is running and caught up (nothing to read yet)
        sent = {}
        for i in range(samples):
            name = f"{tag}-{i}"
            sent[name] = time.monotonic()
            store.create(from_dict(pod(name)))
            time.sleep(0.05)
        lat = []
        for _ in range(watchers * samples):
            name, at = out.get(timeout=60)
            lat.append((at - sent[name]) * 1000)
        lat.sort()
        time.sleep(1.0)
        before = sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(idle)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - before
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.join(10)
        store.close()
    return {"p50_ms": statistics.median(lat), "p99_ms": lat[int(0.99 * (len(lat) - 1))],
            "max_ms": lat[-1], "idle_cpu_pct_of_core": 100 * cpu / idle}


def seed(url: str, n: int) -> None:
    store = open_datastore(url)
    for i in range(n):
        store.create(from_dict(pod(f"seed-{i}")))
    store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=20)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    load_before = load()
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="pn-dsw-bench-") as tmp:
        with EtcdServer(f"{tmp}/etcd") as server:
            urls = {"sqlite": f"sqlite://{tmp}/store.db", "sqlite_poll": f"sqlite://{tmp}/poll.db",
                    "etcd": server.datastore_url("/bench")}
            for url in urls.values():
                seed(url, args.objects)
            for r in range(args.rounds):
                sides = list(urls.items())[r % 3:] + list(urls.items())[:r % 3]   # each goes first once
                rounds.append({side: one_side(url, f"r{r}{side}", args.watchers, args.samples, args.idle)
                               for side, url in sides})
    keys = list(rounds[0]["sqlite"])
    print(f"{args.objects} objects, {args.watchers} watcher processes, {args.samples} writes a round, "
          f"{args.rounds} rounds")
    print(f"{'metric':<24}" + "".join(f"{side:>28}" for side in urls))
    for k in keys:
        print(f"{k:<24}" + "".join(f"{show((rd[side][k] for rd in rounds), '{:.2f}'):>28}" for side in urls))
    figures = {side: {k: spread((rd[side][k] for rd in rounds), 3) for k in keys} for side in urls}
    print(json.dumps({"bench": "datastore_watch", "objects": args.objects, "watchers": args.watchers,
                      "samples": args.samples, "rounds": args.rounds, "figures": figures,
                      "loadavg_before": load_before, "loadavg_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
