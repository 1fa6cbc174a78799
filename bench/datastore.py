#!/usr/bin/env python3
"""podnet's datastore on SQLite and on etcd, next to the raw etcd API it is built on.

For each backend: N creates, N gets, N CAS updates (read, then update on its revision),
one list of N objects, and watch latency (write -> event seen by a watcher, 25 samples).
The reference is a raw etcd v3 gateway `put` of the same JSON over one keep-alive HTTP
session: the floor any etcd client pays. etcd runs from a temp dir on the real disk
(fsync included), started and stopped here by PID. Prints medians over the rounds, the
ratio podnet-etcd create / raw put, and one JSON line at the end.

    .venv/bin/python bench/datastore.py [--n 300] [--rounds 3]
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import requests  # noqa: E402

from podnet.api.objects import from_dict  # noqa: E402
from podnet.datastore.etcd_server import EtcdServer  # noqa: E402
from podnet.datastore.interface import open_datastore  # noqa: E402


def pod(i: int, tag: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{tag}-p{i}", "namespace": "bench", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def watch_latency(url: str, samples: int = 25) -> float:
    store, writer = open_datastore(url), open_datastore(url)
    stop, seen = threading.Event(), {}
    start = store.revision()

    def run() -> None:
        for ev in store.watch(start, stop=stop):
            seen[ev.object.name] = time.perf_counter()

    t = threading.Thread(target=run)
    t.start()
    lat = []
    for i in range(samples):
        t0 = time.perf_counter()
        writer.create(from_dict(pod(i, "lat")))
        while f"lat-p{i}" not in seen:
            time.sleep(0.0005)
        lat.append(seen[f"lat-p{i}"] - t0)
    stop.set()
    t.join()
    store.close()
    writer.close()
    return statistics.median(lat)


def run_backend(url: str, n: int, tag: str) -> dict[str, float]:
    s = open_datastore(url)
    out = {}
    out["create_per_s"] = n / timed(lambda: [s.create(from_dict(pod(i, tag))) for i in range(n)])
    out["get_per_s"] = n / timed(lambda: [s.get("Pod", "bench", f"{tag}-p{i}") for i in range(n)])

    def cas() -> None:
        for i in range(n):
            cur = s.get("Pod", "bench", f"{tag}-p{i}")
            s.update(cur.with_metadata(labels={"app": "db"}), revision=cur.resource_version)
    out["cas_update_per_s"] = n / timed(cas)
    out["list_ms"] = timed(lambda: s.list("Pod", "bench")) * 1000
    out["watch_latency_ms"] = watch_latency(url) * 1000
    s.close()
    return out


def raw_etcd_puts(client_url: str, n: int, tag: str) -> float:
    sess = requests.Session()
    body = json.dumps(pod(0, tag)).encode()

    def put_all() -> None:
        for i in range(n):
            key = base64.b64encode(f"/raw/{tag}/{i}".encode()).decode()
            r = sess.post(client_url + "/v3/kv/put",
                          json={"key": key, "value": base64.b64encode(body).decode()})
            r.raise_for_status()
    rate = n / timed(put_all)
    sess.close()
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "etcd": []}
    raw: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pn-ds-bench-") as tmp:
        with EtcdServer(f"{tmp}/etcd") as server:
            for r in range(args.rounds):
                results["sqlite"].append(run_backend(f"sqlite://{tmp}/store{r}.db", args.n, f"r{r}"))
                results["etcd"].append(run_backend(server.datastore_url(f"/bench{r}"), args.n, f"r{r}"))
                raw.append(raw_etcd_puts(server.client_url, args.n, f"r{r}"))
    med = {b: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for b, rs in results.items()}
    raw_put = statistics.median(raw)
    print(f"{'metric':<20}{'sqlite':>12}{'etcd':>12}")
    for k in med["sqlite"]:
        print(f"{k:<20}{med['sqlite'][k]:>12.1f}{med['etcd'][k]:>12.1f}")
    ratio = med["etcd"]["create_per_s"] / raw_put
    print(f"raw etcd put/s {raw_put:.1f}; podnet etcd create / raw put = {ratio:.2f}")
    print(json.dumps({"bench": "datastore", "n": args.n, "rounds": args.rounds, "median": med,
                      "raw_etcd_put_per_s": raw_put, "etcd_create_vs_raw_put": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
