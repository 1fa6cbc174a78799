#!/usr/bin/env python3
"""The service proxy at scale: podnet's layout vs a kube-proxy-iptables-style linear layout
written in nftables, same services, same machine, same applier, one run (needs root).

For each side: full sync of 1,000 and 10,000 services x 10 endpoints (render + one
transaction, into a fresh table; median of 3), one endpoint change with 10,000 services loaded (median
of several), and first-packet latency (TCP connect to a VIP, median over many; the
measured service is the LAST one, the linear layout's worst case) with 1 and with 10,000
services present. The baseline (`inet pn-bench-linear`) is kube-proxy's iptables shape:
one chain of per-service match rules, a chain per service with one random-choice rule per
endpoint, a chain per endpoint that DNATs. Both are applied through the same libnftables
session (podnet.dataplane.nft.session). Endpoints carry nodeNames as in a cluster: one of
each service's ten is on the benched node (only local endpoints need hairpin state). Everything runs in `pnb-svc-<random id>-*` namespaces
(tests/kernel/services/svc_topo.py). Prints a table, the ratios, and one JSON line.

    sudo .venv/bin/python bench/services.py [--services 10000] [--connects 300]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kernel" / "services"))

from podnet.agent.service_proxy_role import ServiceProxyRole  # noqa: E402
from podnet.api.objects import from_dict  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.calc.services import build_table  # noqa: E402
from podnet.dataplane.nft.session import NftSession  # noqa: E402
from svc_topo import SvcTopo  # noqa: E402
from iptables_shape import LT, linear_change, linear_full  # noqa: E402

BACKEND = "10.244.1.11"  # b1 of svc_topo
EPS = 10
REPEAT = 3  # full syncs per size; the median is reported


def vip(i: int) -> str:
    return str(ipaddress.ip_address("10.96.0.0") + 100 + i)


def objects(n: int, target_last: bool = True) -> list:
    """n Services with EPS endpoints each; the last one's endpoints are the real backend."""
    out = []
    for i in range(n):
        name = f"s{i:05d}"
        out.append(from_dict({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"namespace": "bench", "name": name},
                              "spec": {"clusterIP": vip(i), "clusterIPs": [vip(i)], "selector": {"a": name},
                                       "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
        if i == n - 1 and target_last:
            ips = [BACKEND]
        else:
            base = int(ipaddress.ip_address("10.245.0.0")) + i * EPS
            ips = [str(ipaddress.ip_address(base + j)) for j in range(EPS)]
        out.append(from_dict({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                              "metadata": {"namespace": "bench", "name": f"{name}-x",
                                           "labels": {"kubernetes.io/service-name": name}},
                              "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                              "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                                             "nodeName": "bench" if ip == BACKEND or j == 0 else f"node-{j}"}
                                            for j, ip in enumerate(ips)]}))
    return out


# ---- measurements ------------------------------------------------------------------------
def connect_median(topo: SvcTopo, ip: str, n: int) -> float:
    """Median connect time over 3 rounds of n, after 100 warm-up connects (neighbour
    caches, CPU frequency, Python start-up in the client all settle first)."""
    topo.connect(topo.ns("client"), ip, 80, n=100)
    times: list[float] = []
    for _ in range(3):
        res = topo.connect(topo.ns("client"), ip, 80, n=n, timeout=2)
        ok = [a for a in res["answers"] if a.startswith("b1 ")]
        assert len(ok) == n, f"connects to {ip} failed: {set(res['answers']) - set(ok)}"
        times += res["times"]
    return statistics.median(times)


def changed_slice(i: int, k: int):
    name = f"s{i:05d}"
    base = int(ipaddress.ip_address("10.245.0.0")) + i * EPS
    ips = [str(ipaddress.ip_address(base + j)) for j in range(EPS - 1)] + [f"10.246.{k}.1"]
    return from_dict({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"namespace": "bench", "name": f"{name}-x",
                                   "labels": {"kubernetes.io/service-name": name}},
                      "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                      "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node-1"}
                                    for ip in ips]})


def bench_podnet(topo: SvcTopo, sess: NftSession, n_big: int, connects: int) -> dict[str, float]:
    r: dict[str, float] = {}
    drop = "add table inet podnet-svc\ndelete table inet podnet-svc\n"
    st1 = ClusterState.from_objects(objects(1), "bench")
    ServiceProxyRole().sync(st1, None, sess)
    r["latency_1_us"] = connect_median(topo, vip(0), connects) * 1e6
    for n in (1000, n_big):
        st = ClusterState.from_objects(objects(n), "bench")
        runs, renders = [], []
        for _ in range(REPEAT):
            sess.apply(drop)
            role = ServiceProxyRole()
            t = time.perf_counter()
            role.sync(st, None, sess)
            runs.append(time.perf_counter() - t)
            renders.append(role.last_render_seconds)
        r[f"full_{n}_s"] = statistics.median(runs)
        r[f"full_{n}_render_s"] = statistics.median(renders)
    r[f"latency_{n_big}_us"] = connect_median(topo, vip(n_big - 1), connects) * 1e6
    times = []
    for k in range(7):
        sl = changed_slice(k * 97 % (n_big - 1), k)
        st.put(sl)
        t = time.perf_counter()
        role.sync(st, {sl.key}, sess)
        times.append(time.perf_counter() - t)
    r[f"change_{n_big}_ms"] = statistics.median(times) * 1000
    sess.apply(drop)
    return r


def bench_linear(topo: SvcTopo, sess: NftSession, n_big: int, connects: int) -> dict[str, float]:
    r: dict[str, float] = {}
    drop = f"add table {LT}\ndelete table {LT}\n"
    sess.apply(linear_full(build_table([o for o in objects(1) if o.kind == "Service"],
                                       [o for o in objects(1) if o.kind == "EndpointSlice"], ())))
    r["latency_1_us"] = connect_median(topo, vip(0), connects) * 1e6
    for n in (1000, n_big):
        objs = objects(n)
        runs = []
        for _ in range(REPEAT):
            sess.apply(drop)
            t = time.perf_counter()
            table = build_table([o for o in objs if o.kind == "Service"],
                                [o for o in objs if o.kind == "EndpointSlice"], ())
            sess.apply(linear_full(table))
            runs.append(time.perf_counter() - t)
        r[f"full_{n}_s"] = statistics.median(runs)
    r[f"latency_{n_big}_us"] = connect_median(topo, vip(n_big - 1), connects) * 1e6
    times = []
    for k in range(7):
        i = k * 97 % (n_big - 1)
        sl = changed_slice(i, k)
        old = table.entries[(f"bench/s{i:05d}/tcp/http", 4)]
        t = time.perf_counter()
        new = build_table([o for o in objs if o.kind == "Service" and o.name == f"s{i:05d}"], [sl], ())
        e_new = new.entries[(old.id, 4)]
        sess.apply(linear_change(old, e_new))
        times.append(time.perf_counter() - t)
        table.entries[(old.id, 4)] = e_new  # type: ignore[index]
    r[f"change_{n_big}_ms"] = statistics.median(times) * 1000
    sess.apply(drop)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--connects", type=int, default=300)
    args = ap.parse_args()
    n = args.services
    topo = SvcTopo(f"pnb-svc-{secrets.token_hex(3)}", backends=1)  # unique: never someone else's
    try:
        topo.build()
        topo.start_backend("b1")
        with NftSession(topo.node) as sess:
            pod = bench_podnet(topo, sess, n, args.connects)
            lin = bench_linear(topo, sess, n, args.connects)
    finally:
        topo.teardown()
    keys = ["full_1000_s", f"full_{n}_s", f"change_{n}_ms", "latency_1_us", f"latency_{n}_us"]
    print(f"{'measure':<22}{'podnet':>12}{'linear':>12}{'podnet/linear':>16}")
    for k in keys:
        print(f"{k:<22}{pod[k]:>12.3f}{lin[k]:>12.3f}{pod[k] / lin[k]:>16.3f}")
    growth_p = pod[f"latency_{n}_us"] / pod["latency_1_us"]
    growth_l = lin[f"latency_{n}_us"] / lin["latency_1_us"]
    print(f"first-packet latency growth 1 -> {n} services: podnet x{growth_p:.3f}, linear x{growth_l:.3f}")
    print(json.dumps({"bench": "services", "services": n, "endpoints_per_service": EPS,
                      "podnet": pod, "linear": lin,
                      "ratios": {k: pod[k] / lin[k] for k in keys},
                      "latency_growth": {"podnet": growth_p, "linear": growth_l}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
