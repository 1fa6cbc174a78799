#!/usr/bin/env python3
"""A node agent restarting on a loaded node (issue 22 §Agent start): from process start to
its first full sync, with `--pods` local pods (1,000), `--services` Services x 10 endpoints
(10,000, bench/services.py's mix of ClusterIPs, LoadBalancers and external IPs) and
`--policies` NetworkPolicies (1,000, bench/policy_scale.py's mix) in a SQLite store (needs
root).

The agent is the real `podnet agent` process, started inside a `pnb-as-<id>` node namespace
(an underlay veth holding the node address), as the lab starts it. Measured from the spawn
to the moment its Node shows the first sync done (the agent registers right after its
first full sync; the bench polls the store every 5 ms): Python start and imports, the
store's list of every kind, calc, render, one nft transaction, routes and the Node write.
The first start is cold (an empty kernel); the others are restarts after `kill -9`, with
the previous rules still in the kernel, as after a crash. The agent's own figure for the
sync (its `status.agent.sync`) is reported beside it.

Reference, interleaved with each restart: the kernel's floor, `nft -f` of the ruleset the
agent left (`nft list ruleset`), loaded into a fresh namespace. The goal (< 5 s) is for the
restart; the ratio says how much of it is more than loading the rules.

    sudo .venv/bin/python bench/agent_start.py [--pods 1000] [--services 10000] [--policies 1000] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "kernel" / "services"))

from podnet.api.objects import from_dict  # noqa: E402
from podnet.datastore.sqlite import SqliteDatastore  # noqa: E402
from podnet.lab.procs import podnet_argv  # noqa: E402
from policy_scale import scale_objects  # noqa: E402
from report import load, ratios, show, spread  # noqa: E402
from services import objects as service_objects  # noqa: E402

NODE, NODE_IP, PEER_IP = "bench", "198.18.0.11", "198.18.0.100"
GOAL = 5.0


def sh(*argv: str, input: str | None = None) -> str:
    cp = subprocess.run(argv, capture_output=True, text=True, input=input)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {cp.stderr.strip()}")
    return cp.stdout


def seed(store: SqliteDatastore, pods: int, services: int, policies: int) -> int:
    objs = [from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
            from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                       "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "natOutgoing": True}}),
            from_dict({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                       "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}})]
    objs += scale_objects(pods, policies, n_ns=max(1, min(50, pods // 20)), node_of=lambda i: NODE)
    objs += service_objects(services, target_last=False)
    for o in objs:
        store.create(o)
    return len(objs)


class Node:
    def __init__(self) -> None:
        self.ns = f"pnb-as-{secrets.token_hex(3)}"
        self.peer = f"{self.ns}-u"
        self.made: list[str] = []

    def build(self) -> None:
        for n in (self.ns, self.peer):
            sh("ip", "netns", "add", n)
            self.made.append(n)
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", self.peer)
        sh("ip", "-n", self.ns, "addr", "add", f"{NODE_IP}/24", "dev", "u0")
        sh("ip", "-n", self.peer, "addr", "add", f"{PEER_IP}/24", "dev", "u0")
        for n in (self.ns, self.peer):
            sh("ip", "-n", n, "link", "set", "u0", "up")

    def teardown(self) -> None:
        for n in self.made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def first_sync(store: SqliteDatastore, url: str, node: Node, log: Path) -> tuple[float, float, subprocess.Popen]:
    """Start the agent; (seconds to its first full sync, the agent's own sync seconds)."""
    cur = store.get("Node", "", NODE)
    store.update(cur.with_status({"addresses": [{"type": "InternalIP", "address": NODE_IP}]}))
    argv = ["ip", "netns", "exec", node.ns, *podnet_argv("--datastore", url, "agent",
            "--node", NODE, "--node-ip", NODE_IP)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("ab"))
    while True:
        agent = store.get("Node", "", NODE).status.get("agent") or {}
        if int(agent.get("syncs") or 0) >= 1:
            took = time.perf_counter() - t0
            break
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"the agent exited ({proc.returncode}):\n" + "\n".join(tail))
        if time.perf_counter() - t0 > 600:
            proc.kill()
            raise RuntimeError("no first sync in 600 s")
        time.sleep(0.005)
    own = float((agent.get("sync") or {}).get("lastSeconds") or 0.0)
    return took, own, proc


def kernel_floor(node: Node) -> float:
    """`nft -f` of the agent's ruleset into a fresh namespace."""
    rules = sh("ip", "netns", "exec", node.ns, "nft", "list", "ruleset")
    fresh = f"{node.ns}-f"
    sh("ip", "netns", "add", fresh)
    try:
        t0 = time.perf_counter()
        sh("ip", "netns", "exec", fresh, "nft", "-f", "-", input=rules)
        return time.perf_counter() - t0
    finally:
        subprocess.run(["ip", "netns", "del", fresh], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep-log", help="copy the agent's log (every start) to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    load_before = load()
    node = Node()
    with tempfile.TemporaryDirectory(prefix="pnb-as-") as tmp:
        url = f"sqlite://{tmp}/store.db"
        store = SqliteDatastore(url)
        log = Path(tmp) / "agent.log"
        proc: subprocess.Popen | None = None
        try:
            t = time.perf_counter()
            n = seed(store, args.pods, args.services, args.policies)
            print(f"seeded {n} objects in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            node.build()
            cold, cold_own, proc = first_sync(store, url, node, log)
            restarts, owns, floors = [], [], []
            for i in range(args.runs):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                if i % 2:  # which side goes first alternates
                    floors.append(kernel_floor(node))
                took, own, proc = first_sync(store, url, node, log)
                restarts.append(took)
                owns.append(own)
                if not i % 2:
                    floors.append(kernel_floor(node))
                print(f"run {i + 1}: restart {took:.2f} s (its sync {own:.2f} s), nft -f {floors[-1]:.2f} s",
                      file=sys.stderr)
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            store.close()
            node.teardown()
            if args.keep_log:
                Path(args.keep_log).write_bytes(log.read_bytes())
    held = sum(1 for r in restarts if r < GOAL)
    print(f"agent start, {args.pods} local pods, {args.services} Services x 10, {args.policies} policies")
    print(f"  cold start (empty kernel):     {cold:.2f} s (its first sync {cold_own:.2f} s)")
    print(f"  restart after kill -9:         {show(restarts, '{:.2f}')} s (its sync {show(owns, '{:.2f}')} s)")
    print(f"  nft -f of its ruleset (floor): {show(floors, '{:.2f}')} s")
    print(f"  restart / floor:               {show(ratios(restarts, floors), '{:.1f}')}")
    print(f"  goal < {GOAL:.0f} s: held in {held} of {len(restarts)} runs")
    print(json.dumps({"bench": "agent_start", "pods": args.pods, "services": args.services,
                      "policies": args.policies, "cold_s": round(cold, 3), "restart_s": spread(restarts, 3),
                      "agent_sync_s": spread(owns, 3), "nft_floor_s": spread(floors, 3),
                      "ratio": spread(ratios(restarts, floors), 2), "goal_held": f"{held}/{len(restarts)}",
                      "load_before": load_before, "load_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
