"""Containers that bring their own command: a real process inside the pod's netns.

Most lab containers have no command and are served by the node's `podnet serve`. A
container with `command` (for example the cluster DNS server, `podnet dns`) runs as its
own process: `ip netns exec <pod-netns> <command> <args>`, in a new session, with the
pod's resolv.conf, the container's `env` values, `PODNET_DATASTORE` (as a service account
would give it access to the API), the KUBERNETES_SERVICE_* variables of the `kubernetes`
Service (lab/incluster.py) and the venv's bin dir first on PATH. It counts as ready
once it is alive and every containerPort it declares is bound in the pod's netns (read
from /proc/thread-self/net by a thread that joined that netns).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from podnet.api.objects import Container, Pod
from podnet.dataplane.net.sysctl import call_in_netns
from podnet.lab import incluster, procs
from podnet.lab.state import LabState

READY_TIMEOUT = 20.0
TCP_LISTEN = "0A"


class ContainerError(Exception):
    pass


def with_command(pod: Pod) -> list[Container]:
    return [c for c in pod.containers if c.command]


def _env(pod: Pod, container_name: str, datastore_url: str) -> dict[str, str]:
    env = {"PODNET_DATASTORE": datastore_url,
           "PATH": os.path.dirname(os.path.abspath(sys.executable)) + os.pathsep
           + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "POD_NAME": pod.name, "POD_NAMESPACE": pod.namespace, "HOSTNAME": pod.name,
           **incluster.service_env()}
    for c in pod.spec.get("containers") or []:
        if c.get("name") == container_name:
            for e in c.get("env") or []:
                if e.get("name") and "value" in e:
                    env[str(e["name"])] = str(e["value"])
    return env


def bound_ports(netns: str) -> set[tuple[int, str]]:
    """(port, TCP|UDP) bound in netns: TCP in LISTEN, UDP any."""
    def body() -> set[tuple[int, str]]:
        out: set[tuple[int, str]] = set()
        for name, proto in (("tcp", "TCP"), ("tcp6", "TCP"), ("udp", "UDP"), ("udp6", "UDP")):
            try:
                lines = Path(f"/proc/thread-self/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                if len(f) > 3 and (proto == "UDP" or f[3] == TCP_LISTEN):
                    out.add((int(f[1].rsplit(":", 1)[1], 16), proto))
        return out
    return call_in_netns(netns, body)


def start(state: LabState, pod: Pod, netns: str, datastore_url: str,
          only: set[str] | None = None) -> dict[str, int]:
    """Start every container with a command (or those named in `only`); {container: pid}."""
    pids: dict[str, int] = {}
    for c in with_command(pod):
        if only is not None and c.name not in only:
            continue
        what = f"{_prefix(netns, pod.name)}{c.name}"
        env = {**os.environ, **_env(pod, c.name, datastore_url)}
        pids[c.name] = procs.spawn(state, what, [*c.command, *c.args], netns=netns, env=env)
    return pids


def wait_ready(pod: Pod, netns: str, pids: dict[str, int], timeout: float = READY_TIMEOUT) -> None:
    """Until each process is alive and each of its declared ports is bound."""
    want = {(p.container_port, p.protocol) for c in with_command(pod) for p in c.ports
            if p.protocol in ("TCP", "UDP")}
    deadline = time.monotonic() + timeout
    while True:
        dead = [name for name, pid in pids.items() if not procs.alive(pid)]
        if dead:
            raise ContainerError(f"container {', '.join(dead)} exited (see its log in the lab's logs/)")
        missing = want - bound_ports(netns) if want else set()
        if not missing:
            return
        if time.monotonic() > deadline:
            raise ContainerError("ports not listening after "
                                 f"{timeout:.0f}s: {', '.join(f'{p}/{q}' for p, q in sorted(missing))}")
        time.sleep(0.05)


def log_path(state: LabState, netns: str, pod_name: str, container: str) -> Path:
    """Where a container's process writes its output (what `kubectl logs` shows)."""
    return state.log(f"{_prefix(netns, pod_name)}{container}")


def _prefix(netns: str, pod_name: str) -> str:
    return f"pod-{netns}-{pod_name}-"


def stop(state: LabState, netns: str, pod_name: str, names: list[str] | None = None) -> None:
    """Stop the pod's container processes (recorded as pod-<netns>-<pod>-<container>)."""
    prefix = _prefix(netns, pod_name)
    recorded = {w: pid for w, pid in state.pids().items() if w.startswith(prefix)}
    live = [pid for w, pid in recorded.items()
            if (names is None or w[len(prefix):] in names) and procs.recorded_pid_matches(state, w, pid)]
    procs.stop(live, timeout=2.0)
    for w in recorded:
        state.forget_pid(w)
        state.path("pids", f"{w}.start").unlink(missing_ok=True)


def describe(pids: dict[str, int]) -> dict[str, Any]:
    return {name: {"pid": pid, "alive": procs.alive(pid)} for name, pid in pids.items()}
