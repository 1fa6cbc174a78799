#!/usr/bin/env python3
"""The service proxy at scale: podnet's layout vs kube-proxy's nftables layout (and a
hand-written iptables-shaped layout), same services, same machine, same applier, one run,
the sides interleaved (needs root).

The services are a mix: one in ten a LoadBalancer with an ingress IP (half of those with
loadBalancerSourceRanges), one in ten with an external IP, the rest ClusterIPs (`service`).

Sides, each rendered from the same calc output (podnet.calc.services.build_table):
- podnet: `ServiceProxyRole.sync` (calc + render + apply of `inet podnet-svc`);
- kube-proxy: kube-proxy's nftables layout (bench/kube_proxy_nft.py, from
  pkg/proxy/nftables/proxier.go): per service a chain with `numgen ... vmap` to a chain per
  endpoint that DNATs, dispatch through the `service-ips` verdict map, masquerade marking,
  external and firewall chains for external and load-balancer IPs.
  A sync also lists the table as kube-proxy does (knftables execs `nft --json list table`
  for its chains, then for its sets) to find stale chains: included in the full syncs
  (into a fresh table: cheap), timed once per round apart from the one-endpoint changes
  (at 10k services a listing takes minutes on nft 1.0.6, and the changes use the same
  chain names from what the layout created);
- iptables-shaped (`--iptables-shaped`, off by default): kube-proxy's iptables mode written
  by hand in nft syntax (bench/iptables_shape.py): one linear chain of per-service matches
  (ClusterIPs only: it leaves the external and load-balancer IPs out).
  It shows what a linear first-packet walk costs; it is not kube-proxy's code.
Every ruleset is applied through the same long-lived libnftables session
(podnet.dataplane.nft.session) into the same node netns, and every render runs with the
cyclic garbage collector paused (podnet's role pauses it itself; the bench pauses it
around every side alike).

Each of `--runs` rounds, the sides in rotated order: first-packet latency with 1 service
(TCP connect to the VIP from a pod, median of `--connects` after 100 warm-up connects),
full sync of 1,000 and of `--services` services x 10 endpoints into a fresh table, the
latency to the LAST service (the linear layout's worst case) with them all loaded, and 7
one-endpoint changes. Figures: median and range over the rounds. Endpoints carry nodeNames
as in a cluster: one of each service's ten is on the benched node. Everything runs in
`pnb-svc-<random id>-*` namespaces (tests/kernel/services/svc_topo.py). Prints a table, the
ratios, and one JSON line (with the load average before and after).

    sudo .venv/bin/python bench/services.py [--services 10000] [--connects 300] [--runs 3] [--iptables-shaped] [--kube-proxy-services N]
"""
from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import secrets
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kernel" / "services"))

from podnet.agent.service_proxy_role import ServiceProxyRole  # noqa: E402
from podnet.api.objects import from_dict  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.calc.services import build_table  # noqa: E402
from podnet.dataplane.nft.session import NftSession  # noqa: E402
from svc_topo import NODE_IP4, SvcTopo  # noqa: E402
from iptables_shape import LT, linear_change, linear_full  # noqa: E402
from kube_proxy_nft import T as KPT, KubeProxyLayout  # noqa: E402
from report import load, ratios, show, spread  # noqa: E402

BACKEND = "10.244.1.11"  # b1 of svc_topo
EPS = 10
CHANGES = 7  # one-endpoint changes per round


def vip(i: int) -> str:
    return str(ipaddress.ip_address("10.96.0.0") + 100 + i)


def service(i: int):
    """Service i: a ClusterIP; every tenth (i % 10 == 3) a LoadBalancer with an ingress IP
    (and every twentieth with loadBalancerSourceRanges), every tenth (i % 10 == 7) one with
    an external IP. The last service of each size (i % 10 == 9) is a plain ClusterIP."""
    name = f"s{i:05d}"
    spec: dict = {"clusterIP": vip(i), "clusterIPs": [vip(i)], "selector": {"a": name},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    status: dict = {}
    if i % 10 == 3:
        spec.update(type="LoadBalancer", allocateLoadBalancerNodePorts=False)
        if i % 20 == 3:
            spec["loadBalancerSourceRanges"] = ["203.0.113.0/24"]
        status = {"loadBalancer": {"ingress": [{"ip": extra_ip("100.64.0.0", i)}]}}
    elif i % 10 == 7:
        spec["externalIPs"] = [extra_ip("100.96.0.0", i)]
    return from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "bench", "name": name},
                      "spec": spec, **({"status": status} if status else {})})


def extra_ip(base: str, i: int) -> str:
    return str(ipaddress.ip_address(base) + i)


def objects(n: int, target_last: bool = True) -> list:
    """n Services with EPS endpoints each; the last one's endpoints are the real backend."""
    out = []
    for i in range(n):
        name = f"s{i:05d}"
        out.append(service(i))
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


# ---- the sides ---------------------------------------------------------------------------
@contextmanager
def gc_paused() -> Iterator[None]:
    """The same collector settings for every side: collected before, paused during."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def split(objs: list) -> tuple[list, list]:
    return [o for o in objs if o.kind == "Service"], [o for o in objs if o.kind == "EndpointSlice"]


def changed_entry(i: int, k: int):
    """The calc entry of service i after changed_slice(i, k), for the baselines."""
    return next(iter(build_table([service(i)], [changed_slice(i, k)], ()).entries.values()))


class PodnetSide:
    name = "podnet"

    def __init__(self, sess: NftSession):
        self.sess = sess

    def drop(self) -> None:
        self.sess.apply("add table inet podnet-svc\ndelete table inet podnet-svc\n")

    def load(self, objs: list) -> dict[str, float]:
        self.st = ClusterState.from_objects(objs, "bench")
        self.role = ServiceProxyRole()
        t = time.perf_counter()
        self.role.sync(self.st, None, self.sess)
        return {"total": time.perf_counter() - t, "render": self.role.last_render_seconds}

    def change(self, i: int, k: int) -> dict[str, float]:
        sl = changed_slice(i, k)
        self.st.put(sl)
        t = time.perf_counter()
        self.role.sync(self.st, {sl.key}, self.sess)
        return {"total": time.perf_counter() - t}


class KubeProxySide:
    """kube-proxy's sync: delete chains stale for > 1 s (own transaction), render, list the
    table twice (its chains, its sets), flush stale chains, one transaction."""
    name = "kube-proxy"

    def __init__(self, sess: NftSession, node: str):
        self.sess, self.node = sess, node

    def drop(self) -> None:
        self.sess.apply(f"add table {KPT}\ndelete table {KPT}\n")
        self.layout = KubeProxyLayout(NODE_IP4)

    def listed(self, kind: str) -> list[str]:
        """knftables List(): `nft --json list table ip kube-proxy`, names of one kind."""
        cp = subprocess.run(["ip", "netns", "exec", self.node, "nft", "--json", "list", "table", *KPT.split()],
                            capture_output=True, text=True)
        if cp.returncode != 0:  # no table yet (the first sync)
            return []
        return [o[kind]["name"] for o in json.loads(cp.stdout)["nftables"] if kind in o]

    def _sync(self, render: Callable[[], str], listing: bool) -> dict[str, float]:
        """One sync. `listing=False`: the stale chains come from what the layout created
        (the same names a listing returns); the listing is timed apart (list_cost)."""
        t0 = time.perf_counter()
        pre = self.layout.delete_stale()
        if pre:
            self.sess.apply(pre)
        t1 = time.perf_counter()
        script = render()
        t2 = time.perf_counter()
        chains = self.listed("chain") if listing else sorted(self.layout.existing)
        if listing:
            self.listed("set")
        script += self.layout.stale_after_list(chains)
        t3 = time.perf_counter()
        self.sess.apply(script)
        t4 = time.perf_counter()
        return {"total": t4 - t0, "render": t2 - t1, "apply": (t4 - t3) + (t1 - t0),
                **({"list": t3 - t2} if listing else {})}

    def list_cost(self) -> float:
        """What kube-proxy adds to every sync: its two listings of the table (seconds)."""
        t = time.perf_counter()
        self.listed("chain")
        self.listed("set")
        return time.perf_counter() - t

    def load(self, objs: list) -> dict[str, float]:
        def render() -> str:
            entries = build_table(*split(objs), ()).entries.values()
            return self.layout.full([e for e in entries if e.family == 4])
        return self._sync(render, listing=True)

    def change(self, i: int, k: int) -> dict[str, float]:
        return self._sync(lambda: self.layout.partial([changed_entry(i, k)]), listing=False)


class IptablesShapedSide:
    name = "iptables-shaped"

    def __init__(self, sess: NftSession):
        self.sess = sess

    def drop(self) -> None:
        self.sess.apply(f"add table {LT}\ndelete table {LT}\n")

    def load(self, objs: list) -> dict[str, float]:
        t = time.perf_counter()
        self.table = build_table(*split(objs), ())
        self.sess.apply(linear_full(self.table))
        return {"total": time.perf_counter() - t}

    def change(self, i: int, k: int) -> dict[str, float]:
        old = self.table.entries[(f"bench/s{i:05d}/tcp/http", 4)]
        t = time.perf_counter()
        new = changed_entry(i, k)
        self.sess.apply(linear_change(old, new))
        took = time.perf_counter() - t
        self.table.entries[(old.id, 4)] = new  # type: ignore[index]
        return {"total": took}


# ---- measurements ------------------------------------------------------------------------
def connect_median(topo: SvcTopo, ip: str, n: int) -> float:
    """Median connect time (µs) over n connects, after 100 warm-up connects (neighbour
    caches, CPU frequency, Python start-up in the client all settle first)."""
    topo.connect(topo.ns("client"), ip, 80, n=100)
    res = topo.connect(topo.ns("client"), ip, 80, n=n, timeout=2)
    ok = [a for a in res["answers"] if a.startswith("b1 ")]
    assert len(ok) == n, f"connects to {ip} failed: {set(res['answers']) - set(ok)}"
    return statistics.median(res["times"]) * 1e6


def one_round(side, topo: SvcTopo, objs: dict[int, list], n_big: int, connects: int) -> dict[str, float]:
    """One side's round; its keys name the size, and `big` stands for n_big (the side's own size)."""
    r: dict[str, float] = {"big": n_big}
    side.drop()
    side.load(objs[1])
    r["latency_1_us"] = connect_median(topo, vip(0), connects)
    for n in (1000, n_big):
        side.drop()
        with gc_paused():
            got = side.load(objs[n])
        r.update({f"full_{n}_{k}_s" if k != "total" else f"full_{n}_s": v for k, v in got.items()})
    r[f"latency_{n_big}_us"] = connect_median(topo, vip(n_big - 1), connects)
    changes = []
    for k in range(CHANGES):
        with gc_paused():
            changes.append(side.change(k * 97 % (n_big - 1), k))
    for part in changes[0]:
        key = f"change_{n_big}_ms" if part == "total" else f"change_{n_big}_{part}_ms"
        r[key] = statistics.median(c[part] for c in changes) * 1000
    if isinstance(side, KubeProxySide):
        r[f"list_{n_big}_ms"] = side.list_cost() * 1000
    side.drop()
    r.update({k.replace(f"_{n_big}_", "_big_"): v for k, v in r.items() if f"_{n_big}_" in k})
    return r


def agent_memory(n: int, node: str) -> dict[str, float]:
    """Peak RSS (MiB) of a child process doing the agent's service-proxy part alone: it
    builds the n Services and slices (as the agent's watch cache holds them), the
    ClusterState, and runs one full ServiceProxyRole.sync through an NftSession into `node`;
    and of that session's libnftables helper process (the agent runs one too). Not a whole
    agent (no API client, no other roles): what the services add."""
    code = ("import sys,resource; sys.argv=['x']; sys.path.insert(0,'bench'); import services as s;"
            "from podnet.dataplane.nft.session import NftSession; R=resource.getrusage;"
            f"objs=s.objects({n}); sess=NftSession({node!r}); sess.__enter__(); side=s.PodnetSide(sess);"
            "side.drop(); side.load(objs); side.drop(); sess.__exit__(None, None, None);"
            "print(R(resource.RUSAGE_SELF).ru_maxrss/1024, R(resource.RUSAGE_CHILDREN).ru_maxrss/1024)")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        cwd=Path(__file__).resolve().parents[1], check=True)
    own, helper = (float(x) for x in cp.stdout.split()[-2:])
    return {"agent_part_peak_rss_mib": own, "nft_helper_peak_rss_mib": helper}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--connects", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iptables-shaped", action="store_true", help="also the hand-written iptables-shaped layout")
    ap.add_argument("--kube-proxy-services", type=int, default=0, metavar="N",
                    help="cap the baselines' big size at N (kube-proxy's full sync took 168 s at 10k); 0: no cap")
    args = ap.parse_args()
    n = args.services
    n_kp = min(n, args.kube_proxy_services) if args.kube_proxy_services else n
    load_before = load()
    objs = {k: objects(k) for k in {1, 1000, n, n_kp}}
    rounds: dict[str, list[dict[str, float]]] = {}
    topo = SvcTopo(f"pnb-svc-{secrets.token_hex(3)}", backends=1)  # unique: never someone else's
    try:
        topo.build()
        topo.start_backend("b1")
        with NftSession(topo.node) as sess:
            sides = [PodnetSide(sess), KubeProxySide(sess, topo.node)]
            sides += [IptablesShapedSide(sess)] if args.iptables_shaped else []
            for rnd in range(args.runs):
                for side in sides[rnd % len(sides):] + sides[:rnd % len(sides)]:
                    got = one_round(side, topo, objs, n if side.name == "podnet" else n_kp, args.connects)
                    if side.name == "podnet":
                        got.update(agent_memory(n, topo.node))
                    rounds.setdefault(side.name, []).append(got)
                    print(f"round {rnd + 1} {side.name}: " + "  ".join(
                        f"{k} {v:.3f}" for k, v in got.items() if "_" in k and k.count("_") <= 2),
                        file=sys.stderr)
    finally:
        topo.teardown()
    report(rounds, n, n_kp, args, load_before)
    return 0


def report(rounds: dict[str, list[dict[str, float]]], n: int, n_kp: int, args, load_before: list[float]) -> None:
    """`big` rows are each side's big size (podnet n, the baselines n_kp); ratios only where
    the sizes are equal."""
    keys = ["full_1000_s", "full_big_s", "change_big_ms", "latency_1_us", "latency_big_us"]
    same = keys if n == n_kp else ["full_1000_s", "latency_1_us"]
    names = list(rounds)
    print(f"big = {n} services for podnet, {n_kp} for the baselines"
          + (f" (capped by --kube-proxy-services: ratios only at equal sizes)" if n_kp != n else ""))
    print(f"{'measure':<20}" + "".join(f"{s:>28}" for s in names) + f"{'podnet/kube-proxy':>24}")
    ratio = {k: ratios([r[k] for r in rounds["podnet"]], [r[k] for r in rounds["kube-proxy"]]) for k in same}
    for k in keys:
        print(f"{k:<20}" + "".join(f"{show(r[k] for r in rounds[s]):>28}" for s in names)
              + (f"{show(ratio[k]):>24}" if k in ratio else f"{'-':>24}"))
    growth = {s: ratios([r["latency_big_us"] for r in rs], [r["latency_1_us"] for r in rs])
              for s, rs in rounds.items()}
    print("first-packet latency growth 1 -> big services: "
          + ", ".join(f"{s} x{show(g)}" for s, g in growth.items()))
    mem = [r["agent_part_peak_rss_mib"] for r in rounds["podnet"]]
    helper = [r["nft_helper_peak_rss_mib"] for r in rounds["podnet"]]
    print(f"podnet's service-proxy part alone (child process: objects, state, one full sync) at {n} services: "
          f"peak RSS {show(mem, '{:.0f}')} MiB, its libnftables helper {show(helper, '{:.0f}')} MiB")
    kp = rounds["kube-proxy"]
    print(f"kube-proxy lists its table twice on every sync (knftables: nft --json list table): "
          f"{show((r['list_big_ms'] for r in kp), '{:.0f}')} ms at {n_kp} services, not in change_big_ms above")
    print(json.dumps({"bench": "services", "services": n, "baseline_services": n_kp, "endpoints_per_service": EPS,
                      "runs": args.runs, "connects": args.connects, "changes_per_run": CHANGES,
                      "figures": {s: {k: spread(r[k] for r in rs) for k in rs[0]} for s, rs in rounds.items()},
                      "ratios_podnet_over_kube_proxy": {k: spread(v, 3) for k, v in ratio.items()},
                      "latency_growth": {s: spread(g, 3) for s, g in growth.items()},
                      "loadavg_before": load_before, "loadavg_after": load()}))


if __name__ == "__main__":
    sys.exit(main())
