"""Readiness probes for the lab kubelet: Kubernetes' `readinessProbe` with an `exec`
action, run inside the pod's network namespace.

Only `exec` is honoured: the lab's workload (`podnet serve`) keeps its ports listening
for the pod's whole life, so a `tcpSocket` or `httpGet` probe would always pass and say
nothing. An exec probe is a real command with the container's environment (HOSTNAME and
POD_NAME are the pod's name), e.g. `[sh, -c, 'test ! -e /tmp/unready-$HOSTNAME']`; a
user makes a pod unready by making its command fail. `periodSeconds` (default 10, at
least 1), `timeoutSeconds` (1), `successThreshold` (1) and `failureThreshold` (3) mean
what they mean in Kubernetes. One thread probes every tracked pod when it is due.
"""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from podnet.api.objects import Pod
from podnet.dataplane.net.netns import netns_argv

log = logging.getLogger("podnet.kubelet")
TICK = 0.05
Key = tuple[str, str]


@dataclass(frozen=True)
class ExecProbe:
    command: tuple[str, ...]
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def readiness_probe(pod: Pod) -> ExecProbe | None:
    """The first container's exec readinessProbe; None when there is none (always ready)."""
    for c in pod.spec.get("containers") or []:
        p = c.get("readinessProbe") if isinstance(c, dict) else None
        cmd = ((p or {}).get("exec") or {}).get("command") if isinstance(p, dict) else None
        if isinstance(cmd, list) and cmd and isinstance(p, dict):
            spec: dict[str, Any] = p

            def num(name: str, default: float, least: float) -> float:
                try:
                    return max(least, float(spec.get(name, default)))
                except (TypeError, ValueError):
                    return default
            return ExecProbe(tuple(str(x) for x in cmd), num("periodSeconds", 10, 1),
                             num("timeoutSeconds", 1, 1), int(num("successThreshold", 1, 1)),
                             int(num("failureThreshold", 3, 1)))
    return None


def run_exec(netns: str, probe: ExecProbe, env: dict[str, str]) -> bool:
    try:
        cp = subprocess.run(netns_argv(netns, list(probe.command)), env=env, timeout=probe.timeout,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return cp.returncode == 0


@dataclass
class _Tracked:
    netns: str
    probe: ExecProbe
    env: dict[str, str]
    ready: bool
    due: float
    streak: int = 0  # consecutive results that disagree with `ready`


class Prober:
    """Probes tracked pods when due; calls `on_change(key, ready)` when a pod's readiness
    flips (after its thresholds). `run` is the probe runner (a seam for unit tests)."""

    def __init__(self, on_change: Callable[[Key, bool], None],
                 run: Callable[[str, ExecProbe, dict[str, str]], bool] = run_exec,
                 clock: Callable[[], float] = time.monotonic):
        self.on_change, self.run, self.clock = on_change, run, clock
        self.tracked: dict[Key, _Tracked] = {}
        self.lock = threading.Lock()

    def first(self, key: Key, netns: str, probe: ExecProbe, env: dict[str, str]) -> bool:
        """Probe once now (a pod starts unready until its probe passes) and track it."""
        ready = self.run(netns, probe, env)
        with self.lock:
            self.tracked[key] = _Tracked(netns, probe, env, ready, self.clock() + probe.period)
        return ready

    def forget(self, key: Key) -> None:
        with self.lock:
            self.tracked.pop(key, None)

    def tick(self) -> None:
        now = self.clock()
        with self.lock:
            due = [(k, t) for k, t in self.tracked.items() if t.due <= now]
        for key, t in due:
            ok = self.run(t.netns, t.probe, t.env)
            t.due = self.clock() + t.probe.period
            if ok == t.ready:
                t.streak = 0
                continue
            t.streak += 1
            if t.streak >= (t.probe.success_threshold if ok else t.probe.failure_threshold):
                t.ready, t.streak = ok, 0
                with self.lock:
                    if self.tracked.get(key) is not t:
                        continue  # forgotten meanwhile
                try:
                    self.on_change(key, ok)
                except Exception:  # noqa: BLE001 - the prober outlives one bad update
                    log.exception("readiness of %s/%s", *key)

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            self.tick()


def env_of(pod: Pod, base: dict[str, Any]) -> dict[str, str]:
    return {**{k: str(v) for k, v in base.items()}, "HOSTNAME": pod.name, "POD_NAME": pod.name,
            "POD_NAMESPACE": pod.namespace}
