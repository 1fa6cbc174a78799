"""Helpers for the lab's end-to-end tests: run podnet, wait for pods, probe from pods.

Probes run real sockets inside each pod's network namespace (a thread that joined it),
so hundreds of pod-to-pod checks take a second instead of a process per probe.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from podnet.api.objects import Pod
from podnet.dataplane.net.sysctl import call_in_netns
from podnet.datastore.interface import Datastore, open_datastore

NETNS_ANNOTATION = "podnet.io/netns"


class Lab:
    def __init__(self, name: str, home: Path):
        self.name = name
        self.home = home
        self.env = {**os.environ, "PODNET_HOME": str(home)}
        self.env.pop("PODNET_DATASTORE", None)

    def podnet(self, *args: str, check: bool = True, input: str | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], env=self.env,
                            capture_output=True, text=True, input=input, timeout=timeout)
        if check and cp.returncode != 0:
            raise AssertionError(f"podnet {' '.join(args)}: exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
        return cp

    @property
    def dir(self) -> Path:
        return self.home / "labs" / self.name

    def store(self) -> Datastore:
        return open_datastore((self.dir / "datastore.url").read_text().strip())

    def pods(self, namespace: str | None = None) -> list[Pod]:
        s = self.store()
        try:
            return [p for p in s.list("Pod", namespace).items if isinstance(p, Pod)]
        finally:
            s.close()

    def wait_pods(self, count: int, timeout: float = 60.0, namespace: str = "default",
                  **match: str) -> list[Pod]:
        """Until exactly `count` pods of the namespace (with these labels) exist and all are
        Ready. (Other parts, cluster DNS for one, run pods of their own in kube-system.)"""
        deadline = time.monotonic() + timeout
        while True:
            pods = [p for p in self.pods(namespace) if all(p.labels.get(k) == v for k, v in match.items())]
            if len(pods) == count and all(p.ready and p.pod_ips for p in pods):
                return pods
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pods)} pods, {sum(p.ready for p in pods)} ready; "
                                     f"want {count}: {[(p.name, p.phase, p.status.get('message')) for p in pods]}")
            time.sleep(0.1)

    def down(self) -> None:
        self.podnet("down", "--name", self.name, "--force", check=False)


def probe_tcp(ip: str, port: int, timeout: float = 2.0) -> str:
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((ip, port))
        s.sendall(b"probe\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def probe_udp(ip: str, port: int, timeout: float = 1.0, tries: int = 3) -> str:
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for attempt in range(tries):
            s.sendto(b"probe\n", (ip, port))
            try:
                return s.recv(4096).decode().strip()
            except socket.timeout:
                if attempt == tries - 1:
                    raise
    raise AssertionError("unreachable")


def probe_from(netns: str, targets: list[tuple[str, int, str]]) -> list[tuple[tuple[str, int, str], str]]:
    """Inside `netns`, probe each (ip, port, proto); the answer line or `ERROR: ...`."""
    def body() -> list[tuple[tuple[str, int, str], str]]:
        out = []
        for ip, port, proto in targets:
            try:
                ans = probe_tcp(ip, port) if proto == "TCP" else probe_udp(ip, port)
            except OSError as e:
                ans = f"ERROR: {e}"
            out.append(((ip, port, proto), ans))
        return out
    return call_in_netns(netns, body)


def all_pairs(pods: list[Pod], port: int, families: tuple[int, ...] = (4, 6),
              protos: tuple[str, ...] = ("TCP", "UDP")) -> list[str]:
    """Every pod probes every pod (itself too); returns the failures, [] when all answered
    with the right pod name and the sender's own pod IP."""
    failures: list[str] = []
    by_ip = {ip: p for p in pods for ip in p.pod_ips}

    def one(src: Pod) -> list[str]:
        targets = [(ip, port, proto) for dst in pods for ip in dst.pod_ips
                   if (6 if ":" in ip else 4) in families for proto in protos]
        bad = []
        for (ip, prt, proto), ans in probe_from(src.annotations[NETNS_ANNOTATION], targets):
            dst = by_ip[ip]
            src_ip = next(a for a in src.pod_ips if (":" in a) == (":" in ip))
            want = f"{dst.namespace}/{dst.name} {src_ip}"
            if ans != want:
                bad.append(f"{src.name} -> {dst.name} {ip} {prt}/{proto}: got {ans!r}, want {want!r}")
        return bad

    with ThreadPoolExecutor(8) as ex:
        for bad in ex.map(one, pods):
            failures.extend(bad)
    return failures


def root_ns_snapshot() -> dict[str, Any]:
    def out(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True).stdout
    links = sorted(line.split(" state ")[0].split(": ", 1)[1] for line in out("ip", "-o", "link").splitlines())
    return {"links": links, "routes": out("ip", "route"), "routes6": out("ip", "-6", "route"),
            "nft": out("nft", "list", "ruleset")}


def netns_list() -> set[str]:
    return {line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                       text=True).stdout.splitlines() if line.strip()}


def manifests(deploy_replicas: int, pods: int, port: int = 8080, pinned: dict[int, str] | None = None) -> str:
    docs = [f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {deploy_replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, tier: e2e}}}}
    spec:
      containers:
      - name: srv
        image: podnet/serve
        ports: [{{containerPort: {port}}}, {{containerPort: {port}, protocol: UDP}}]
"""]
    for i in range(1, pods + 1):
        node = (pinned or {}).get(i)
        docs.append(f"""apiVersion: v1
kind: Pod
metadata: {{name: p{i}, labels: {{app: solo, tier: e2e}}}}
spec:
  {f'nodeName: {node}' if node else ''}
  containers:
  - name: srv
    image: podnet/serve
    ports: [{{containerPort: {port}}}, {{containerPort: {port}, protocol: UDP}}]
""")
    return "---\n".join(docs)
