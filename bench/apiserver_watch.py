"""The watch-latency phase of bench/apiserver.py (issue 14 §5): 100 HTTP watchers of the API
server against the store's own watch, the same writes."""
from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import statistics
import threading
import time
from typing import Any, Callable

import aiohttp

from podnet.api.objects import from_dict
from podnet.apiserver.write import Writer
from podnet.datastore.interface import open_datastore


def pod(name: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}


def pct(vals: list[float], p: float) -> float:
    s = sorted(vals)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def api_watch_latency(srv: Any, write: Callable[[str], None], ns: str, watchers: int,
                            samples: int) -> list[float]:
    """write(name): a pod of that name written (to the store, or through the API)."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    rv = srv.session.get(f"{srv.url}/api/v1/namespaces/{ns}/pods?limit=1").json()["metadata"]["resourceVersion"]
    seen: dict[str, list[float]] = {}
    ready = 0
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(connector=conn, headers={"Authorization": srv.session.headers["Authorization"]},
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
            await loop.run_in_executor(None, write, name)
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


def watch_phase(srv: Any, url: str, writer: Writer, runs: int, watchers: int,
                samples: int) -> dict[str, list[float]]:
    """api: written to the store by this process (as the lab's controllers and kubelets
    write), the server's one store watch polls for it; api-post: POSTed through the API,
    so the server's own commit wakes its watch; store: the store's watch on a client of
    its own in this process (not the writer's, so it polls as another process's would)."""
    out: dict[str, list[float]] = {k: [] for k in ("store_p50", "store_p99", "api_p50", "api_p99",
                                                   "api-post_p50", "api-post_p99")}
    writer.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watch"}}))

    def to_store(name: str) -> None:
        writer.create(from_dict(pod(name, "watch")))

    def to_api(name: str) -> None:
        resp = srv.session.post(f"{srv.url}/api/v1/namespaces/watch/pods", json=pod(name, "watch"))
        assert resp.status_code == 201, resp.text

    for r in range(runs):
        def api() -> None:
            lat = asyncio.run(api_watch_latency(srv, to_store, "watch", watchers, samples))
            out["api_p50"].append(statistics.median(lat) * 1000)
            out["api_p99"].append(pct(lat, 99) * 1000)

        def api_post() -> None:
            lat = asyncio.run(api_watch_latency(srv, to_api, "watch", watchers, samples))
            out["api-post_p50"].append(statistics.median(lat) * 1000)
            out["api-post_p99"].append(pct(lat, 99) * 1000)

        def direct() -> None:
            lat = store_watch_latency(url, writer, "watch", samples)
            out["store_p50"].append(statistics.median(lat) * 1000)
            out["store_p99"].append(pct(lat, 99) * 1000)
        for fn in ((api, api_post, direct) if r % 2 == 0 else (direct, api_post, api)):
            fn()
    return out


