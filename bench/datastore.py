#!/usr/bin/env python3
"""podnet's datastore on SQLite and on etcd, next to the raw etcd API it is built on.

The compared figure: creates per second through podnet's etcd datastore (validation,
JSON, one etcd transaction "create_revision == 0 -> put" through the grpc-gateway) against
raw etcd v3 gateway `put`s of the same JSON over one keep-alive HTTP session (no compare,
no validation: the floor any etcd client pays). The two are interleaved in chunks of
`--chunk` writes, alternating which side goes first, so a slow phase of the shared machine
lands on both. etcd runs from a temp dir on the real disk, fsync included (a write costs
mostly etcd's WAL fsync), started and stopped here by PID.

Also, per backend (SQLite and etcd): gets, CAS updates (read, then update on its revision),
one list of N objects, and watch latency (write -> event seen by a watcher, 25 samples).
Every figure is the median of `--rounds` rounds with its range; the ratio is taken per
round (podnet-etcd create rate / raw put rate of the same round). Prints a table, the
ratio, and one JSON line with the load average before and after.

    .venv/bin/python bench/datastore.py [--n 300] [--rounds 3] [--chunk 25]
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
from report import load, ratios, show, spread  # noqa: E402


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


def reads_and_watch(s, url: str, n: int, tag: str) -> dict[str, float]:
    """Gets, CAS updates and a list over the n objects `tag` created, then watch latency."""
    out = {"get_per_s": n / timed(lambda: [s.get("Pod", "bench", f"{tag}-p{i}") for i in range(n)])}

    def cas() -> None:
        for i in range(n):
            cur = s.get("Pod", "bench", f"{tag}-p{i}")
            s.update(cur.with_metadata(labels={"app": "db"}), revision=cur.resource_version)
    out["cas_update_per_s"] = n / timed(cas)
    out["list_ms"] = timed(lambda: s.list("Pod", "bench")) * 1000
    out["watch_latency_ms"] = watch_latency(url) * 1000
    return out


class RawPuts:
    """The reference: etcd gateway puts of a pod's JSON over one keep-alive session."""

    def __init__(self, client_url: str, tag: str):
        self.url = client_url + "/v3/kv/put"
        self.tag = tag
        self.value = base64.b64encode(json.dumps(pod(0, tag)).encode()).decode()
        self.sess = requests.Session()
        self.sess.trust_env = False  # as podnet's sessions: no proxy from the environment

    def put(self, i: int) -> None:
        key = base64.b64encode(f"/raw/{self.tag}/{i}".encode()).decode()
        self.sess.post(self.url, json={"key": key, "value": self.value}).raise_for_status()


def etcd_creates_vs_raw(store, raw: RawPuts, n: int, chunk: int, tag: str) -> tuple[float, float]:
    """Create rates (podnet on etcd, raw put), interleaved chunk by chunk."""
    spent = {"podnet": 0.0, "raw": 0.0}
    for c, lo in enumerate(range(0, n, chunk)):
        idx = range(lo, min(lo + chunk, n))
        sides = [("podnet", lambda: [store.create(from_dict(pod(i, tag))) for i in idx]),
                 ("raw", lambda: [raw.put(i) for i in idx])]
        for side, fn in (sides if c % 2 == 0 else sides[::-1]):
            spent[side] += timed(fn)
    return n / spent["podnet"], n / spent["raw"]


def one_round(server: EtcdServer, tmp: str, r: int, n: int, chunk: int) -> dict[str, dict[str, float]]:
    tag = f"r{r}"
    sqlite_url = f"sqlite://{tmp}/store{r}.db"
    s = open_datastore(sqlite_url)
    sq = {"create_per_s": n / timed(lambda: [s.create(from_dict(pod(i, tag))) for i in range(n)])}
    sq.update(reads_and_watch(s, sqlite_url, n, tag))
    s.close()
    etcd_url = server.datastore_url(f"/bench{r}")
    e, raw = open_datastore(etcd_url), RawPuts(server.client_url, tag)
    ec, rp = etcd_creates_vs_raw(e, raw, n, chunk, tag)
    et = {"create_per_s": ec, **reads_and_watch(e, etcd_url, n, tag)}
    e.close()
    raw.sess.close()
    return {"sqlite": sq, "etcd": et, "raw_etcd": {"put_per_s": rp}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=25)
    args = ap.parse_args()
    load_before = load()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="pn-ds-bench-") as tmp:
        with EtcdServer(f"{tmp}/etcd") as server:
            for r in range(args.rounds):
                rounds.append(one_round(server, tmp, r, args.n, args.chunk))
    figures = {side: {k: spread(rd[side][k] for rd in rounds) for k in rounds[0][side]}
               for side in rounds[0]}
    per_round = ratios([rd["etcd"]["create_per_s"] for rd in rounds],
                       [rd["raw_etcd"]["put_per_s"] for rd in rounds])
    print(f"{'metric':<20}{'sqlite':>26}{'etcd':>26}")
    for k in rounds[0]["sqlite"]:
        print(f"{k:<20}{show((rd['sqlite'][k] for rd in rounds), '{:.1f}'):>26}"
              f"{show((rd['etcd'][k] for rd in rounds), '{:.1f}'):>26}")
    print(f"raw etcd put/s {show((rd['raw_etcd']['put_per_s'] for rd in rounds), '{:.1f}')}")
    print(f"ratio podnet-on-etcd create / raw etcd put (per round): {show(per_round, '{:.2f}')}")
    print(json.dumps({"bench": "datastore", "n": args.n, "rounds": args.rounds, "chunk": args.chunk,
                      "figures": figures, "etcd_create_vs_raw_put": spread(per_round, 3),
                      "loadavg_before": load_before, "loadavg_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
