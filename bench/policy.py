"""NetworkPolicy at scale: 1,000 policies over 2,000 pods (`--policies`, `--pods`), on one node netns
(worst case: every pod local, so every policy is rendered), plus the data-path cost between two real pods.

Measures, each over `--runs` runs (median and range), the sides of each comparison
interleaved run by run:
- full sync: calc + render + `nft -f` of the whole `inet podnet-pol` table, beside the same
  script loaded from a file with `nft -f` (the floor: the kernel and nft's parser alone);
- one change (partial sync): one policy edited, one pod relabelled, one namespace relabelled,
  each applied as the agent applies it (one long-lived NftSession), with the calc+render
  part alone, and again through the `nft -f` CLI for comparison;
- between two pods through the node (iperf3 TCP throughput, 3 s; TCP connect latency,
  median of `--connects` connects from a fresh client after 50 warm-up connects): with the
  policies; without any ruleset in the node; without policies but with connection tracking
  on (two empty forward chains with `ct state established,related accept`: what a podnet
  node always has, since the service proxy's NAT tracks connections); and a bare veth pair.
  bench/policy_connect.py splits the connect-latency difference further.
Goals (issue #7): full apply < 5 s, one change < 100 ms, throughput with >= 95% of without.
With `--cluster-policies N` (default 200, bench/policy_cluster.py) the same runs carry N
ClusterNetworkPolicies in both tiers, one change includes a cluster policy edited, and the
data path gains the side `v1only` (the ruleset without them). Goals (issue 20 §5): full
apply < 5 s, one change < 100 ms, connect latency within 10% of `v1only`.
Needs root; everything lives in `pnb-pol-<random id>-*` namespaces, removed at the end.
Prints a table, then one JSON line with the load average before and after.

    sudo .venv/bin/python bench/policy.py [--runs 5] [--connects 1000] [--pods 2000] [--policies 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "kernel" / "policy"))

import topo  # noqa: E402
from policy_cluster import cluster_policies  # noqa: E402
from policy_scale import scale_objects  # noqa: E402

from podnet.agent.policy_role import PolicyRole  # noqa: E402
from podnet.api.objects import NetworkPolicy, Pod  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.dataplane.nft.runner import NftRunner  # noqa: E402
from podnet.dataplane.nft.session import NftSession  # noqa: E402
from report import load, ratios, show, spread  # noqa: E402

PREFIX = f"pnb-pol-{secrets.token_hex(3)}"  # benches own the pnb- prefix; unique per run
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


PODS_PER_NS = 40  # bench/policy_scale.py's 50 namespaces: --pods / 50, set in main


def one_changes(state: ClusterState, i: int):
    """The three one-change cases, each yielded once the state holds it: a policy's port
    edited, a pod's tier relabelled, a namespace's team relabelled."""
    np_ = state.get("NetworkPolicy", "ns7", "np7")
    spec = dict(np_.spec)
    spec["ingress"] = [{**spec["ingress"][0], "ports": [{"port": 1000 + i}]}]
    state.put(np_.with_spec(spec))
    yield "policy", np_.key
    p = state.get("Pod", "ns3", f"p{3 * PODS_PER_NS + 10}")  # p130 at 2,000 pods (40 a namespace)
    state.put(p.with_metadata(labels={**p.labels, "tier": f"tier{(i + 2) % 3}"}))
    yield "pod", p.key
    n = state.get("Namespace", "", "ns9")
    state.put(n.with_metadata(labels={"team": f"t{(i + 1) % 5}"}))
    yield "namespace", n.key
    c = state.get("ClusterNetworkPolicy", "", "admin-10")
    if c is not None:  # one ClusterNetworkPolicy's priority edited
        state.put(c.with_spec({**c.spec, "priority": (i % 40) + 1}))
        yield "cluster_policy", c.key


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
import json, resource, socket, statistics, sys, time
n, ts = int(sys.argv[2]), []
for _ in range(50):  # warm-up: neighbour entries, caches
    socket.create_connection((sys.argv[1], 80), timeout=2).close()
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((sys.argv[1], 80), timeout=2)
    ts.append(time.perf_counter() - t)
    s.close()
r1 = resource.getrusage(resource.RUSAGE_SELF)
ts.sort()
print(json.dumps({"median": statistics.median(ts) * 1e6, "p10": ts[len(ts) // 10] * 1e6,
                  "cpu": ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) / n * 1e6}))
"""
WARM_UP = 50  # connects before the timed ones, in CONNECT_LOOP


def connect_argv(client_ns: str, ip: str, n: int) -> list[str]:
    return ["ip", "netns", "exec", client_ns, sys.executable, "-c", CONNECT_LOOP, ip, str(n)]


def connect(client_ns: str, ip: str, n: int) -> dict[str, float]:
    """Median and 10th percentile of n TCP connect times, and the client's CPU time
    (user+system) per connect, in µs."""
    return json.loads(topo.sh(*connect_argv(client_ns, ip, n)).stdout)


# what a node without policies still has in a podnet cluster: connection tracking (the
# service proxy's NAT needs it), here as two empty forward chains that look at ct state
CONNTRACK_ONLY = ("add table inet podnet-pol\ndelete table inet podnet-pol\nadd table inet podnet-pol\n"
                  "add chain inet podnet-pol egress { type filter hook forward priority filter + 5 ; policy accept ; }\n"
                  "add chain inet podnet-pol ingress { type filter hook forward priority filter + 10 ; policy accept ; }\n"
                  "add rule inet podnet-pol egress ct state established,related accept\n"
                  "add rule inet podnet-pol ingress ct state established,related accept\n")
NO_TABLE = "add table inet podnet-pol\ndelete table inet podnet-pol\n"


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


def full_syncs(nft: NftRunner, node: str, objs: list, runs: int) -> tuple[dict[str, list[float]], str]:
    """podnet's full sync beside `nft -f` of the same script from a file, alternating."""
    out: dict[str, list[float]] = {"full_sync_s": [], "full_calc_render_s": [], "nft_file_s": []}
    script = ""
    with tempfile.NamedTemporaryFile("w", prefix="pnb-pol-", suffix=".nft") as f:
        for r in range(runs):
            def podnet() -> None:
                nonlocal script
                state = ClusterState.from_objects(objs, node_name="node-1")
                role = PolicyRole("node-1")
                t0 = time.perf_counter()
                script = role.nft_fragment(state, None)
                out["full_calc_render_s"].append(time.perf_counter() - t0)
                nft.apply(script)
                role.committed(True)
                out["full_sync_s"].append(time.perf_counter() - t0)

            def from_file() -> None:  # (run 0 runs podnet first, so a script exists)
                f.seek(0)
                f.truncate()
                f.write(script)
                f.flush()
                out["nft_file_s"].append(timed(lambda: topo.nsx(node, "nft", "-f", f.name)))
            for fn in ((podnet, from_file) if r % 2 == 0 else (from_file, podnet)):
                fn()
    return out, script


def one_changes_timed(role: PolicyRole, state: ClusterState, session: NftSession, nft: NftRunner,
                      runs: int) -> dict[str, float]:
    """The three one-change cases, as the agent applies them (session), then through the CLI."""
    res: dict[str, float] = {}
    for applier, tag in ((session, ""), (nft, "_nft_cli")):
        one: dict[str, list[float]] = {}
        calc: dict[str, list[float]] = {}
        for i in range(max(runs, 9)):
            for kind, key in one_changes(state, i):
                one.setdefault(kind, []).append(timed(lambda: sync(role, applier, state, {key})))
                calc.setdefault(kind, []).append(CALC_TIMES[-1])
        for kind in one:
            res[f"one_{kind}_change{tag}_ms"] = statistics.median(one[kind]) * 1e3
            if not tag:
                res[f"one_{kind}_change_calc_render_ms"] = statistics.median(calc[kind]) * 1e3
    return res


def data_path(nft: NftRunner, script: str, pods: tuple[str, str], bare: list[str], runs: int,
              connects: int, v1_script: str = "") -> dict[str, list[float]]:
    """Throughput and connect latency, every side once per run, in rotated order; with
    `v1_script` (the ruleset without the cluster policies) also that side, `v1only`."""
    cns, sns = pods
    sides = [("bare", None), ("with", script), ("without", NO_TABLE), ("conntrack", CONNTRACK_ONLY)]
    if v1_script:
        sides.append(("v1only", v1_script))
    got: dict[str, list[float]] = {}
    for r in range(runs):
        for name, ruleset in sides[r % len(sides):] + sides[:r % len(sides)]:
            if ruleset is not None:
                nft.apply(ruleset)
            client, server, ip = (bare[0], bare[1], "10.99.0.2") if name == "bare" else (cns, sns, SERVER_IP)
            got.setdefault(f"throughput_{name}_gbps", []).append(iperf(client, server, ip))
            for stat, v in connect(client, ip, connects).items():
                got.setdefault(f"connect_{name}_{stat}_us", []).append(v)
        print(f"data path run {r + 1}: " + "  ".join(f"{k} {v[-1]:.1f}" for k, v in got.items()
                                                     if "gbps" in k or "median" in k), file=sys.stderr)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--connects", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=2000, help="synthetic pods on the node (bench/policy_scale.py)")
    ap.add_argument("--policies", type=int, default=1000, help="synthetic NetworkPolicies over them")
    ap.add_argument("--cluster-policies", type=int, default=200,
                    help="ClusterNetworkPolicies on top, both tiers (issue 20 §5; 0: v1 only, as before)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/policy.py needs root (network namespaces)", file=sys.stderr)
        return 1
    load_before = load()
    server = real_pod("ns0", "server", {"app": "app-0", "tier": "tier0", "role": "server"},
                      SERVER_IP, "fd00:10:244::100:1")
    client = real_pod("ns1", "client", {"app": "app-1", "tier": "tier1", "role": "client"},
                      CLIENT_IP, "fd00:10:244::100:2")
    t, annotated = topo.build(PREFIX, [server, client])
    bare, bare_srv = [], None
    sessions: list[NftSession] = []
    try:
        bare, bare_srv = bare_pair()
        # the floor of any sync: one trivial `nft -f` in an empty netns (machine load shows here)
        noop_runner = NftRunner(bare[0])
        noop = [timed(lambda: noop_runner.apply("add table inet pn-noop\ndelete table inet pn-noop\n"))
                for _ in range(5)]
        nft = NftRunner(t.node)
        global PODS_PER_NS
        PODS_PER_NS = args.pods // 50
        v1_objs = scale_objects(args.pods, args.policies) + annotated + bench_policies()
        objs = v1_objs + cluster_policies(args.cluster_policies)
        series, script = full_syncs(nft, t.node, objs, args.runs)
        v1_script = PolicyRole("node-1").nft_fragment(ClusterState.from_objects(v1_objs, node_name="node-1"), None) \
            if args.cluster_policies else ""
        state = ClusterState.from_objects(objs, node_name="node-1")
        role = PolicyRole("node-1")
        sync(role, nft, state, None)
        session = NftSession(t.node)
        sessions.append(session)
        single = one_changes_timed(role, state, session, nft, args.runs)
        series.update(data_path(nft, script, (t.pod_netns("ns1/client"), t.pod_netns("ns0/server")),
                                bare, args.runs, args.connects, v1_script))
    finally:
        for sess in sessions:
            sess.close()
        if bare_srv is not None:
            bare_srv.terminate()
            bare_srv.wait(timeout=5)
        for ns in bare:
            topo.sh("ip", "netns", "del", ns, check=False)
        t.destroy()
    report(series, single, noop, len(script), args, load_before)
    return 0


def report(series: dict[str, list[float]], single: dict[str, float], noop: list[float], script_len: int,
           args, load_before: list[float]) -> None:
    rat = {"full_sync_over_nft_file": ratios(series["full_sync_s"], series["nft_file_s"]),
           "throughput_with_over_without": ratios(series["throughput_with_gbps"], series["throughput_without_gbps"]),
           "throughput_with_over_conntrack": ratios(series["throughput_with_gbps"],
                                                    series["throughput_conntrack_gbps"]),
           "throughput_with_over_bare": ratios(series["throughput_with_gbps"], series["throughput_bare_gbps"])}
    if "throughput_v1only_gbps" in series:  # issue 20 §5: the cluster policies' own cost
        rat["throughput_with_over_v1only"] = ratios(series["throughput_with_gbps"], series["throughput_v1only_gbps"])
    for stat in ("median", "p10", "cpu"):
        for other in ("without", "conntrack", "bare", "v1only"):
            if f"connect_{other}_{stat}_us" not in series:
                continue
            rat[f"connect_{stat}_with_over_{other}"] = ratios(series[f"connect_with_{stat}_us"],
                                                              series[f"connect_{other}_{stat}_us"])
    w = max(len(k) for k in [*series, *rat, *single])
    for k, v in series.items():
        print(f"{k:<{w}}  {show(v)}")
    for k, v in rat.items():
        print(f"{k:<{w}}  {show(v)}")
    for k, x in single.items():
        print(f"{k:<{w}}  {x:.3f}")
    tp = spread(rat["throughput_with_over_without"], 3)
    print(f"throughput goal (with >= 0.95 x without): median {tp['median']} [{tp['min']}-{tp['max']}]: "
          f"{'holds' if tp['median'] >= 0.95 else 'MISSED'} at the median"
          f"{', holds in every run' if tp['min'] >= 0.95 else ', missed in some runs'}")
    print(json.dumps({"bench": "policy", "pods": args.pods, "policies": args.policies,
                      "cluster_policies": args.cluster_policies, "runs": args.runs,
                      "connects": args.connects, "script_mb": round(script_len / 1e6, 2),
                      "nft_noop_ms": round(statistics.median(noop) * 1e3, 2),
                      "figures": {k: spread(v) for k, v in series.items()},
                      "ratios": {k: spread(v, 3) for k, v in rat.items()},
                      "one_change": {k: round(v, 3) for k, v in single.items()},
                      "loadavg_before": load_before, "loadavg_after": load()}))


if __name__ == "__main__":
    sys.exit(main())
