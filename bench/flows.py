"""Flows on vs off (issue 18 §4): what recording every verdict costs the data path, and how
many new flows per second a node records without losing any.

One node netns with two pods (tests/kernel/policy/topo.py), the policy table rendered by
the agent's policy role with one NetworkPolicy allowing the client to the server, so that
every new connection is logged by the allowing rule (nflog) and seen by conntrack: two
events per connection, the worst case of an isolated pod. "on" runs the agent's flow
recorder (ulogd2 + the ring) in the node netns; "off" runs none (what `--no-flows` gives:
the log statements stay, with no listener). Runs alternate on/off, each measuring:
- TCP connects per second, client to server, one connection at a time (`--connects`);
- iperf3 TCP throughput, 3 s.
Then, flows on, bursts of new connections from `--procs` parallel clients at full speed:
the rate of each burst and whether the ring saw every one (seen == attempted, no
overruns); the highest such rate is the figure.
Goals: on >= 95% of off for both; >= 20,000 flows/s recorded without loss.
Needs root; everything lives in `pnb-fl-<random id>-*` namespaces, removed at the end.

    sudo .venv/bin/python bench/flows.py [--runs 3] [--connects 2000] [--burst 5000] [--procs 4]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "kernel" / "policy"))

import topo  # noqa: E402

from podnet import setns  # noqa: E402
from podnet.agent import flows  # noqa: E402
from podnet.agent.flow_server import FlowRecorder  # noqa: E402
from podnet.agent.policy_role import PolicyRole  # noqa: E402
from podnet.api.objects import NetworkPolicy, Pod  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.dataplane.nft.runner import NftRunner  # noqa: E402
from report import load, ratios, show  # noqa: E402

PREFIX = f"pnb-fl-{secrets.token_hex(3)}"
SERVER_IP, CLIENT_IP = "10.244.100.1", "10.244.100.2"
SOCKET = f"{PREFIX}-flows"

CONNECTS = """
import socket, sys, time
ip, n = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
ok = 0
for _ in range(n):
    try:
        socket.create_connection((ip, 80), timeout=2).close()
        ok += 1
    except OSError:
        pass
print(ok, time.perf_counter() - t)
"""


def pod(ns: str, name: str, role: str, ip4: str, ip6: str) -> Pod:
    return Pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"role": role}},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}]},
                "status": {"podIPs": [{"ip": ip4}, {"ip": ip6}]}})


def allow_client() -> NetworkPolicy:
    return NetworkPolicy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": "allow-client", "namespace": "ns0"},
                          "spec": {"podSelector": {"matchLabels": {"role": "server"}},
                                   "ingress": [{"from": [{"namespaceSelector": {},
                                                          "podSelector": {"matchLabels": {"role": "client"}}}]}]}})


def connects(client_ns: str, n: int, procs: int = 1) -> tuple[int, float]:
    """(connections made, seconds) of `procs` clients making n/procs each, in parallel."""
    ps = [subprocess.Popen(["ip", "netns", "exec", client_ns, sys.executable, "-c", CONNECTS, SERVER_IP,
                            str(n // procs)], stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    t = time.perf_counter()
    ok = sum(int(p.communicate()[0].split()[0]) for p in ps)
    return ok, time.perf_counter() - t


def iperf(client_ns: str, server_ns: str) -> float:
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = topo.nsx(client_ns, "iperf3", "-c", SERVER_IP, "-t", "3", "-J").stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        srv.terminate()
        srv.wait(timeout=5)


def start_recorder(node_ns: str, role: PolicyRole, objs: list) -> FlowRecorder:
    """The agent's recorder, started from a thread inside the node netns (ulogd inherits it)."""
    rules, pods = role.flow_rules()
    names = flows.names_of([(p.namespace, p.name, p.pod_ips) for p in objs if isinstance(p, Pod)], [])
    rec = FlowRecorder("node-1", lambda: (flows.causes_of(rules, pods), names), cap=4096, socket_name=SOCKET)
    err: list[BaseException] = []
    ready = threading.Event()

    def run() -> None:
        # ulogd dies with the thread that started it (PR_SET_PDEATHSIG): it stays until close
        try:
            setns.enter(node_ns)
            rec.start()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            err.append(e)
        ready.set()
        rec.stop.wait()
    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    if err:
        raise err[0]
    time.sleep(0.5)  # ulogd binds its nflog group and conntrack
    return rec


def settled(rec: FlowRecorder, want: int, timeout: float = 10.0) -> int:
    """Records seen once the reader has caught up (or `timeout`)."""
    deadline = time.monotonic() + timeout
    last, still = -1, 0
    while time.monotonic() < deadline:
        seen = rec.ring.added
        if seen >= want:
            return seen
        still = still + 1 if seen == last else 0
        if still >= 5:
            return seen
        last = seen
        time.sleep(0.2)
    return rec.ring.added


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--burst", type=int, default=5000)
    ap.add_argument("--procs", type=int, default=4)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/flows.py needs root (network namespaces)", file=sys.stderr)
        return 1
    load_before = load()
    server = pod("ns0", "server", "server", SERVER_IP, "fd00:10:244::100:1")
    client = pod("ns1", "client", "client", CLIENT_IP, "fd00:10:244::100:2")
    t, annotated = topo.build(PREFIX, [server, client])
    series: dict[str, list[float]] = {}
    bursts: list[dict[str, float]] = []
    rec: FlowRecorder | None = None
    try:
        objs = [*annotated, allow_client()]
        role = PolicyRole("node-1")
        NftRunner(t.node).apply(role.nft_fragment(ClusterState.from_objects(objs, node_name="node-1"), None))
        role.committed(True)
        cl, sv = t.pod_netns("ns1/client"), t.pod_netns("ns0/server")
        connects(cl, 200)  # warm-up
        for _ in range(args.runs):
            for mode in ("off", "on"):
                if mode == "on":
                    rec = start_recorder(t.node, role, objs)
                ok, secs = connects(cl, args.connects)
                series.setdefault(f"connects_per_s_{mode}", []).append(ok / secs)
                series.setdefault(f"throughput_{mode}_gbps", []).append(iperf(cl, sv))
                if rec is not None:
                    rec.close()
                    rec = None
        rec = start_recorder(t.node, role, objs)
        for procs in range(1, args.procs + 1):
            before, over = rec.ring.added, rec.ring.overruns
            ok, secs = connects(cl, args.burst, procs)
            # one record per connection: the allow rule's log and conntrack's event are joined
            seen = settled(rec, before + ok) - before
            bursts.append({"procs": procs, "attempted": ok, "per_s": round(ok / secs),
                           "seen": seen, "overruns": rec.ring.overruns - over,
                           "lossless": seen == ok and rec.ring.overruns == over})
    finally:
        if rec is not None:
            rec.close()
        t.destroy()
    lossless = [b["per_s"] for b in bursts if b["lossless"]]
    print(f"{'measure':<28} {'off':>24} {'on':>24}")
    for m, fmt in (("connects_per_s", "{:.0f}"), ("throughput", "{:.2f}")):
        off = series[f"{m}_off" if m == "connects_per_s" else "throughput_off_gbps"]
        on = series[f"{m}_on" if m == "connects_per_s" else "throughput_on_gbps"]
        print(f"{m:<28} {show(off, fmt):>24} {show(on, fmt):>24}")
    for b in bursts:
        print(f"burst, {b['procs']} clients: {b['per_s']} new flows/s, {b['seen']}/{b['attempted']} recorded, "
              f"{b['overruns']} overruns")
    print(json.dumps({"series": series, "bursts": bursts,
                      "ratios": {"connects_on_over_off": ratios(series["connects_per_s_on"], series["connects_per_s_off"]),
                                 "throughput_on_over_off": ratios(series["throughput_on_gbps"],
                                                                  series["throughput_off_gbps"])},
                      "max_lossless_flows_per_s": max(lossless, default=0),
                      "load_before": load_before, "load_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
