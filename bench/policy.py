"""NetworkPolicy at scale: 1,000 policies over 2,000 pods, on one node netns (worst case:
every pod local, so every policy is rendered), plus the data-path cost between two real pods.

Measures (medians):
- full sync: calc + render + `nft -f` of the whole `inet podnet-pol` table;
- one change (partial sync): one policy edited, one pod relabelled, one namespace relabelled,
  each applied as the agent applies it (one long-lived NftSession), with the calc+render
  part alone, and again through the `nft -f` CLI for comparison;
- TCP throughput (iperf3, 3 s) and TCP connect latency between two pods through the node,
  with and without the policies, next to a bare veth pair between two namespaces.
Goals (issue #7): full apply < 5 s, one change < 100 ms, throughput with >= 95% of without.
Needs root; everything lives in `pnb-pol-<random id>-*` namespaces, removed at the end.
Prints a table, then one JSON line.
"""
from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "kernel" / "policy"))

import topo  # noqa: E402
from policy_scale import scale_objects  # noqa: E402

from podnet.agent.policy_role import PolicyRole  # noqa: E402
from podnet.api.objects import NetworkPolicy, Pod  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.dataplane.nft.runner import NftRunner  # noqa: E402
from podnet.dataplane.nft.session import NftSession  # noqa: E402

PREFIX = f"pnb-pol-{secrets.token_hex(3)}"  # benches own the pnb- prefix; unique per run
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SERVER_IP, CLIENT_IP = "10.244.100.1", "10.244.100.2"


def real_pod(ns: str, name: str, labels: dict, ip4: str, ip6: str) -> Pod:
    return Pod({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}]},
                "status": {"podIPs": [{"ip": ip4}, {"ip": ip6}]}})


def bench_policies() -> list[NetworkPolicy]:
    mk = lambda ns, name, spec: NetworkPolicy({  # noqa: E731
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
    return [mk("ns0", "bench-allow-in", {"podSelector": {"matchLabels": {"role": "server"}}, "ingress": [
                {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "client"}}}],
                 "ports": [{"port": 5201}, {"port": 80}]}]}),
            mk("ns1", "bench-allow-out", {"podSelector": {"matchLabels": {"role": "client"}},
                                          "policyTypes": ["Egress"], "egress": [{}]})]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


CALC_TIMES: list[float] = []


def one_changes(state: ClusterState, i: int):
    """The three one-change cases, each yielded once the state holds it: a policy's port
    edited, a pod's tier relabelled, a namespace's team relabelled."""
    np_ = state.get("NetworkPolicy", "ns7", "np7")
    spec = dict(np_.spec)
    spec["ingress"] = [{**spec["ingress"][0], "ports": [{"port": 1000 + i}]}]
    state.put(np_.with_spec(spec))
    yield "policy", np_.key
    p = state.get("Pod", "ns3", "p130")
    state.put(p.with_metadata(labels={**p.labels, "tier": f"tier{(i + 2) % 3}"}))
    yield "pod", p.key
    n = state.get("Namespace", "", "ns9")
    state.put(n.with_metadata(labels={"team": f"t{(i + 1) % 5}"}))
    yield "namespace", n.key


def sync(role: PolicyRole, nft: NftRunner | NftSession, state: ClusterState, changed) -> None:
    t = time.perf_counter()
    script = role.nft_fragment(state, changed)
    CALC_TIMES.append(time.perf_counter() - t)
    try:
        nft.apply(script)
    except Exception:
        role.committed(False)
        raise
    role.committed(True)


def iperf(client_ns: str, server_ns: str, ip: str) -> float:
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = topo.nsx(client_ns, "iperf3", "-c", ip, "-t", "3", "-J").stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        srv.terminate()
        srv.wait(timeout=5)


CONNECT_LOOP = """
import socket, statistics, sys, time
ts = []
for _ in range(300):
    t = time.perf_counter()
    s = socket.create_connection((sys.argv[1], 80), timeout=2)
    ts.append(time.perf_counter() - t)
    s.close()
print(statistics.median(ts) * 1e6)
"""


def connect_us(client_ns: str, ip: str) -> float:
    return float(topo.nsx(client_ns, sys.executable, "-c", CONNECT_LOOP, ip).stdout)


def bare_pair() -> tuple[list[str], subprocess.Popen]:
    a, b = f"{PREFIX}-bare-a", f"{PREFIX}-bare-b"
    for ns in (a, b):
        topo.sh("ip", "netns", "add", ns)
    topo.batch(a, ["link set lo up", f"link add eth0 type veth peer name eth0 netns {b}",
                   "addr add 10.99.0.1/24 dev eth0", "link set eth0 up"])
    topo.batch(b, ["link set lo up", "addr add 10.99.0.2/24 dev eth0", "link set eth0 up"])
    srv = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, str(topo.SERVER), "80"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert srv.stdout is not None and srv.stdout.readline().strip() == b"ready"
    return [a, b], srv


def main() -> int:
    if os.geteuid() != 0:
        print("bench/policy.py needs root (network namespaces)", file=sys.stderr)
        return 1
    server = real_pod("ns0", "server", {"app": "app-0", "tier": "tier0", "role": "server"},
                      SERVER_IP, "fd00:10:244::100:1")
    client = real_pod("ns1", "client", {"app": "app-1", "tier": "tier1", "role": "client"},
                      CLIENT_IP, "fd00:10:244::100:2")
    t, annotated = topo.build(PREFIX, [server, client])
    bare, bare_srv = [], None
    sessions: list[NftSession] = []
    res: dict[str, float] = {}
    try:
        bare, bare_srv = bare_pair()
        # the floor of any sync: one trivial `nft -f` in an empty netns (machine load shows here)
        noop_runner = NftRunner(bare[0])
        noop = [timed(lambda: noop_runner.apply("add table inet pn-noop\ndelete table inet pn-noop\n"))
                for _ in range(5)]
        sns, cns = t.pod_netns("ns0/server"), t.pod_netns("ns1/client")
        nft = NftRunner(t.node)
        # ---- full sync at scale
        objs = scale_objects() + annotated + bench_policies()
        fulls, renders = [], []
        for _ in range(RUNS):
            state = ClusterState.from_objects(objs, node_name="node-1")
            role = PolicyRole("node-1")
            t0 = time.perf_counter()
            script = role.nft_fragment(state, None)
            renders.append(time.perf_counter() - t0)
            nft.apply(script)
            role.committed(True)
            fulls.append(time.perf_counter() - t0)
        res["script_mb"] = len(script) / 1e6
        # ---- one change: as the agent applies it (one long-lived NftSession), then through
        # the `nft -f` CLI for comparison (start-up and cache fill on every transaction)
        session = NftSession(t.node)
        sessions.append(session)
        for applier, tag in ((session, ""), (nft, "_nft_cli")):
            one: dict[str, list[float]] = {"policy": [], "pod": [], "namespace": []}
            calc: dict[str, list[float]] = {"policy": [], "pod": [], "namespace": []}
            for i in range(max(RUNS, 9)):
                for kind, key in one_changes(state, i):
                    one[kind].append(timed(lambda: sync(role, applier, state, {key})))
                    calc[kind].append(CALC_TIMES[-1])
            for kind in one:
                res[f"one_{kind}_change{tag}_ms"] = statistics.median(one[kind]) * 1e3
                if not tag:
                    res[f"one_{kind}_change_calc_render_ms"] = statistics.median(calc[kind]) * 1e3
        # ---- data path, with and without the policies, interleaved (the machine is shared:
        # alternating keeps slow phases from landing on one side only)
        tp_with, lat_with, tp_without, lat_without, tp_bare, lat_bare = [], [], [], [], [], []
        for _ in range(RUNS):
            tp_bare.append(iperf(bare[0], bare[1], "10.99.0.2"))
            lat_bare.append(connect_us(bare[0], "10.99.0.2"))
            tp_with.append(iperf(cns, sns, SERVER_IP))
            lat_with.append(connect_us(cns, SERVER_IP))
            nft.apply("delete table inet podnet-pol\n")
            role.committed(False)
            tp_without.append(iperf(cns, sns, SERVER_IP))
            lat_without.append(connect_us(cns, SERVER_IP))
            sync(role, nft, state, None)
        med = statistics.median
        res.update({
            "pods": 2000, "policies": 1000,
            "full_sync_s": med(fulls), "full_calc_render_s": med(renders),
            "nft_noop_ms": med(noop) * 1e3,
            "throughput_bare_gbps": med(tp_bare), "throughput_without_gbps": med(tp_without),
            "throughput_with_gbps": med(tp_with),
            "connect_bare_us": med(lat_bare), "connect_without_us": med(lat_without),
            "connect_with_us": med(lat_with),
        })
        res["throughput_with_over_without"] = res["throughput_with_gbps"] / res["throughput_without_gbps"]
        res["throughput_with_over_bare"] = res["throughput_with_gbps"] / res["throughput_bare_gbps"]
        res["connect_with_over_without"] = res["connect_with_us"] / res["connect_without_us"]
    finally:
        for sess in sessions:
            sess.close()
        if bare_srv is not None:
            bare_srv.terminate()
            bare_srv.wait(timeout=5)
        for ns in bare:
            topo.sh("ip", "netns", "del", ns, check=False)
        t.destroy()
    w = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{w}}  {v:.3f}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    print(json.dumps({"bench": "policy", **{k: round(v, 4) if isinstance(v, float) else v
                                             for k, v in res.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
