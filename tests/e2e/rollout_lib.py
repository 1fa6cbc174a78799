"""A rollout under load (issue 17 §1), shared by tests/e2e/test_rollout.py and
bench/rollout.py: a client pod sends requests to a Service's virtual IPs (each family the
lab has) in a steady loop, one TCP connection per request, while the Service's
Deployment is scaled 3 -> 1 -> 3 and then each of its pods is deleted one by one.
Every request that does not get its `HTTP/1.0 200` answer counts as failed.

`graceful=True`: the pods have a preStop sleep of 1 s (`pre_stop=False`: none) and a short
grace period, and are deleted as `podnet delete` does by default. `graceful=False` is podnet's old immediate
deletion: terminationGracePeriodSeconds 0 (so scale-down deletes at once as well) and
`podnet delete --grace-period=0 --force`.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from lablib import NETNS_ANNOTATION, Lab
from podnet.api.objects import Pod, Service
from podnet.dataplane.net.sysctl import call_in_netns

PORT = 8080
MIN_REQUESTS = 600
PAUSE = 0.01  # between two requests of the client loop


def manifests(name: str, replicas: int, graceful: bool, dual_stack: bool, pre_stop: bool = True) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": "podnet/serve",
                                            "ports": [{"containerPort": PORT}]}]}
    if graceful:
        spec["terminationGracePeriodSeconds"] = 5
        if pre_stop:
            spec["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 1}}}
    else:
        spec["terminationGracePeriodSeconds"] = 0
    svc_spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": PORT}]}
    if dual_stack:
        svc_spec["ipFamilyPolicy"] = "RequireDualStack"
    docs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": svc_spec},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-client", "labels": {"role": "client"}},
         "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "podnet/serve",
                                                    "ports": [{"containerPort": 9}]}]}},
    ]
    return yaml.safe_dump_all(docs)


@dataclass
class Outcome:
    total: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    by_family: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "failed": self.failed, "seconds": round(self.seconds, 2),
                "by_family": self.by_family, "errors": self.errors[:10]}


def request(ip: str, timeout: float = 3.0) -> str | None:
    """One HTTP request over a new connection; None when answered 200, else what went wrong."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((ip, 80))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None if data.startswith(b"HTTP/1.0 200") else f"answer {data[:60]!r}"


class ClientLoop:
    """The client pod's loop, in a thread that joined its network namespace."""

    def __init__(self, netns: str, vips: list[str]):
        self.netns, self.vips = netns, vips
        self.stop = threading.Event()
        self.out = Outcome()
        self.thread = threading.Thread(target=lambda: call_in_netns(netns, self._loop), daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        i = 0
        while not self.stop.is_set():
            ip = self.vips[i % len(self.vips)]
            i += 1
            err = request(ip)
            self.out.total += 1
            fam = "IPv6" if ":" in ip else "IPv4"
            self.out.by_family[fam] = self.out.by_family.get(fam, 0) + 1
            if err is not None:
                self.out.failed += 1
                self.out.errors.append(f"{time.monotonic() - t0:.2f}s {ip}: {err}")
            time.sleep(PAUSE)
        self.out.seconds = time.monotonic() - t0


def _active(lab: Lab, app: str) -> tuple[list[Pod], list[Pod]]:
    pods = [p for p in lab.pods("default") if p.labels.get("app") == app]
    return [p for p in pods if not p.deletion_timestamp], [p for p in pods if p.deletion_timestamp]


def wait_settled(lab: Lab, app: str, count: int, timeout: float = 60.0) -> list[Pod]:
    """Until exactly `count` pods run and are Ready, and none is terminating."""
    deadline = time.monotonic() + timeout
    while True:
        active, leaving = _active(lab, app)
        if len(active) == count and not leaving and all(p.ready and p.pod_ips for p in active):
            return active
        if time.monotonic() > deadline:
            raise AssertionError(f"{app}: {len(active)} active ({sum(p.ready for p in active)} ready), "
                                 f"{len(leaving)} terminating; want {count}")
        time.sleep(0.1)


def run(lab: Lab, graceful: bool, dual_stack: bool, name: str = "roll", pre_stop: bool = True) -> Outcome:
    """The scenario on a lab that is up; the Deployment, Service and client are removed after."""
    lab.podnet("apply", "-f", "-", input=manifests(name, 3, graceful, dual_stack, pre_stop))
    wait_settled(lab, name, 3)
    client = next(p for p in lab.wait_pods(1, role="client") if p.name == f"{name}-client")
    store = lab.store()
    try:
        svc = store.get("Service", "default", name)
    finally:
        store.close()
    assert isinstance(svc, Service)
    vips = list(svc.cluster_ips)
    time.sleep(1.0)  # every node's proxy has the endpoints
    loop = ClientLoop(client.annotations[NETNS_ANNOTATION], vips)
    force = [] if graceful else ["--grace-period=0", "--force"]
    loop.thread.start()
    try:
        time.sleep(0.5)
        lab.podnet("apply", "-f", "-", input=manifests(name, 1, graceful, dual_stack, pre_stop))
        wait_settled(lab, name, 1)
        lab.podnet("apply", "-f", "-", input=manifests(name, 3, graceful, dual_stack, pre_stop))
        for p in wait_settled(lab, name, 3):
            time.sleep(0.3)
            lab.podnet("delete", "pod", p.name, *force)
            wait_settled(lab, name, 3)
        while loop.out.total < MIN_REQUESTS:
            time.sleep(0.1)
    finally:
        loop.stop.set()
        loop.thread.join(10)
        lab.podnet("delete", "-f", "-", "--grace-period=0", "--force", "--ignore-not-found",
                   input=manifests(name, 3, graceful, dual_stack, pre_stop), check=False)
    return loop.out
