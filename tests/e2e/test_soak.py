"""The soak (issue 17 §4): a lab under continuous churn of pods, Services and policies, with
traffic checked every round; at the end every node's data plane matches what calc computes
from the store, no address leaked, and no agent grew by more than 20%.

The slow tier: it runs only with `pytest --soak` (PODNET_SOAK_SECONDS, default 600), not in
CI's default run. Every round: the Deployment is scaled (1..4), one of its pods deleted, a
Service created and the oldest of four deleted, a policy that isolates the Deployment's pods
but allows the probe port applied or removed (so reachability on that port never changes
while the ruleset does); then every pod reaches every pod, and a client reaches every
Service, on real packets.
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from typing import Any, Iterator

import pytest

from lablib import NETNS_ANNOTATION, Lab, all_pairs, manifests, probe_from
from podnet.api.objects import Pod
from podnet.lab.state import LabState

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.soak]
PORT = 8080
SECONDS = float(os.environ.get("PODNET_SOAK_SECONDS", "600"))
MEMORY_GROWTH = 1.20

ALLOW_PORT = f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-port-only}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress: [{{ports: [{{port: {PORT}}}, {{port: {PORT}, protocol: UDP}}]}}]
"""
DENY_WEB = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
"""


def service(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: web}}
  ports: [{{name: tcp, port: 80, targetPort: {PORT}}}]
"""


@pytest.fixture(scope="module")
def lab(lab_home: Any) -> Iterator[Lab]:
    lab = Lab("sk" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", timeout=300)
        yield lab
    finally:
        lab.down()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def agents(lab: Lab) -> dict[str, int]:
    return {w: pid for w, pid in LabState(lab.dir).pids().items() if w.startswith("agent-")}


def web_pods(lab: Lab, replicas: int) -> list[Pod]:
    return lab.wait_pods(replicas + 2, timeout=90)


def services_reachable(lab: Lab, client: Pod) -> list[str]:
    store = lab.store()
    try:
        vips = [(s.spec["clusterIP"], s.name) for s in store.list("Service", "default").items
                if s.name.startswith("churn-")]
    finally:
        store.close()
    answers = probe_from(client.annotations[NETNS_ANNOTATION], [(ip, 80, "TCP") for ip, _ in vips])
    return [f"{name} {ip}: {ans}" for (ip, name), ((_, _, _), ans) in zip(vips, answers)
            if not ans.startswith("default/web-")]


def kernel_service_keys(lab: Lab, node: str) -> set[tuple[str, str, int]]:
    out = subprocess.run(["ip", "netns", "exec", f"pn-{lab.name}-{node}", "nft", "list", "map", "inet",
                          "podnet-svc", "svc4"], capture_output=True, text=True, check=True).stdout
    return {(ip, proto.upper(), int(port))
            for ip, proto, port in re.findall(r"(\d+\.\d+\.\d+\.\d+) \. (tcp|udp|sctp) \. (\d+)", out)}


def store_service_keys(lab: Lab) -> set[tuple[str, str, int]]:
    store = lab.store()
    try:
        return {(ip, p.get("protocol", "TCP"), int(p["port"]))
                for s in store.list("Service").items
                for ip in (s.spec.get("clusterIPs") or [s.spec.get("clusterIP")])
                if ip and ip != "None" and ":" not in ip for p in s.spec.get("ports") or []}
    finally:
        store.close()


def policy_differences(lab: Lab) -> list[str]:
    """calc's prediction from the store's objects against real connections, port PORT."""
    from podnet.calc.model import ClusterState
    from podnet.cli.policy import predict_tables, probe_sources, probe_tables
    store = lab.store()
    try:
        objs = [o for k in ("Namespace", "Pod", "NetworkPolicy") for o in store.list(k).items]
    finally:
        store.close()
    state = ClusterState.from_objects(objs)
    pods = probe_sources([p for p in objs if isinstance(p, Pod)], "default", 4)
    (predicted, _, _), = predict_tables(state, pods, [PORT], "TCP", 4, None)
    (measured, _, _), = probe_tables(pods, "default", [PORT], "TCP", 4)
    return predicted.diff(measured)


def test_soak(lab: Lab) -> None:
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    web_pods(lab, 2)
    time.sleep(5)  # the agents' first syncs and caches are in before the baseline
    before = {w: rss_kib(pid) for w, pid in agents(lab).items()}
    deadline = time.monotonic() + SECONDS
    rounds, services = 0, []
    while time.monotonic() < deadline:
        rounds += 1
        replicas = 1 + rounds % 4
        lab.podnet("apply", "-f", "-", input=manifests(replicas, 2, PORT))
        name = f"churn-{rounds}"
        lab.podnet("apply", "-f", "-", input=service(name))
        services.append(name)
        if len(services) > 4:
            lab.podnet("delete", "service", services.pop(0))
        if rounds % 2:
            lab.podnet("apply", "-f", "-", input=ALLOW_PORT)
        else:
            lab.podnet("delete", "networkpolicy", "web-port-only", check=False)
        pods = web_pods(lab, replicas)
        victim = next(p for p in pods if p.name.startswith("web-"))
        lab.podnet("delete", "pod", victim.name, "--grace-period", "1")
        pods = web_pods(lab, replicas)
        failures = all_pairs(pods, PORT, families=(4,))
        assert not failures, f"round {rounds}: " + "\n".join(failures[:10])
        client = next(p for p in pods if p.name == "p1")
        deadline_svc = time.monotonic() + 10
        while bad := services_reachable(lab, client):  # a new Service's first sync
            assert time.monotonic() < deadline_svc, f"round {rounds}: {bad}"
            time.sleep(0.2)

    # the end: the policies in place decide, and calc says what the kernel does
    lab.podnet("apply", "-f", "-", input=DENY_WEB)
    lab.podnet("delete", "networkpolicy", "web-port-only", check=False)
    time.sleep(2)
    diff = policy_differences(lab)
    assert not diff, "calc and the kernel differ:\n" + "\n".join(diff)
    want = store_service_keys(lab)
    for node in ("n1", "n2"):
        deadline_sync = time.monotonic() + 10
        while (have := kernel_service_keys(lab, node)) != want:
            assert time.monotonic() < deadline_sync, (node, sorted(have ^ want))
            time.sleep(0.2)
    check = lab.podnet("ipam", "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    after = {w: rss_kib(pid) for w, pid in agents(lab).items()}
    grown = {w: (before[w], after[w]) for w in before if after[w] > before[w] * MEMORY_GROWTH}
    assert not grown, f"agents grew more than {MEMORY_GROWTH - 1:.0%} in {rounds} rounds (KiB before, after): {grown}"
    print(f"soak: {rounds} rounds in {SECONDS:.0f} s; agents' RSS KiB {before} -> {after}")
