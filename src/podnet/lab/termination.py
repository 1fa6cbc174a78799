"""How the lab kubelet stops a terminating pod's workload, as a kubelet does (issue 17 §1).

A pod marked terminating (metadata.deletionTimestamp, apiserver/deleting.py) gets, in
order: its preStop hook (`lifecycle.preStop.exec.command`, run in the pod's network
namespace with the container's environment as a readiness probe is, or
`lifecycle.preStop.sleep.seconds`), then SIGTERM (the node's `podnet serve` drains the
pod: stops accepting, answers what is in flight; a container with a command of its own
gets the signal), a wait until the workload is done or the grace period
(deletionGracePeriodSeconds, counted from when the kubelet starts) is over, and then
SIGKILL. Tearing the sandbox down (CNI DEL) and deleting the object for good are the
kubelet's (lab/kubelet.py). A pod deleted for good meanwhile, or whose grace was
shortened, cuts every wait short.

Why a preStop sleep matters: the endpoint turns `ready: false` when the pod is marked,
but every node's proxy needs a moment to hear it; a server that closes its listener at
once resets the new connections still sent its way. Kubernetes users add a preStop sleep
for this, and so do the lab's rollout test and bench (`sleep.seconds: 1`).
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from podnet.api.objects import Pod
from podnet.apiserver.deleting import DEFAULT_GRACE_SECONDS
from podnet.apiserver.write import Writer
from podnet.datastore.interface import Conflict, Datastore, NotFound
from podnet.dataplane.net.netns import netns_argv
from podnet.lab import procs, probes
from podnet.lab.serve import ServeError
from podnet.lab.serve_control import ServeClient

log = logging.getLogger("podnet.kubelet")
POLL = 0.02


@dataclass(frozen=True)
class PreStop:
    command: tuple[str, ...] = ()  # exec
    sleep: float = 0.0  # sleep action


def pre_stop(pod: Pod) -> PreStop | None:
    """The first container's preStop hook (exec or sleep); None when there is none."""
    for c in pod.spec.get("containers") or []:
        hook = ((c.get("lifecycle") or {}).get("preStop") or {}) if isinstance(c, dict) else {}
        cmd = (hook.get("exec") or {}).get("command") if isinstance(hook, dict) else None
        if isinstance(cmd, list) and cmd:
            return PreStop(command=tuple(str(x) for x in cmd))
        secs = (hook.get("sleep") or {}).get("seconds") if isinstance(hook, dict) else None
        if isinstance(secs, (int, float)) and secs > 0:
            return PreStop(sleep=float(secs))
    return None


def grace_of(pod: Pod) -> float:
    """deletionGracePeriodSeconds, else the pod's terminationGracePeriodSeconds, else 30."""
    for v in (pod.metadata.get("deletionGracePeriodSeconds"), pod.spec.get("terminationGracePeriodSeconds")):
        if isinstance(v, int) and v >= 0:
            return float(v)
    return float(DEFAULT_GRACE_SECONDS)


class Stopper:
    """Stops one pod's workload within its grace period. `cut(start)` says the wait is
    over early (the pod was deleted for good, or its grace shortened)."""

    def __init__(self, pod: Pod, netns: str, serve: ServeClient | None, pids: dict[str, int],
                 cut: Callable[[float], bool]):
        self.pod, self.netns, self.serve, self.pids, self.cut = pod, netns, serve, pids, cut
        self.start = time.monotonic()
        self.deadline = self.start + grace_of(pod)

    def over(self) -> bool:
        return time.monotonic() >= self.deadline or self.cut(self.start)

    def run(self) -> dict[str, Any]:
        """Hook, SIGTERM, wait; what happened (for the log)."""
        out: dict[str, Any] = {}
        hook = pre_stop(self.pod)
        if hook is not None and self.netns:
            out["preStop"] = self._hook(hook)
        name = f"{self.pod.namespace}/{self.pod.name}"
        draining = self.serve is not None and self._drain(name) is not None
        procs.terminate(list(self.pids.values()))
        while not self.over():
            left = self._drain(name) if draining else 0
            if not left and not any(procs.alive(p) for p in self.pids.values()):
                break
            time.sleep(POLL)
        else:
            out["killed"] = True  # SIGKILL: the kubelet's teardown ends what is left
        out["seconds"] = round(time.monotonic() - self.start, 3)
        return out

    def _hook(self, hook: PreStop) -> str:
        if hook.sleep:
            while not self.over() and time.monotonic() < self.start + hook.sleep:
                time.sleep(POLL)
            return f"slept {min(hook.sleep, time.monotonic() - self.start):.1f}s"
        env = probes.env_of(self.pod, dict(os.environ))
        try:
            cp = subprocess.run(netns_argv(self.netns, list(hook.command)), env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                timeout=max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return "timed out"
        except OSError as e:
            return f"failed: {e}"
        return f"exit {cp.returncode}"

    def _drain(self, name: str) -> int | None:
        """In-flight connections of the pod in `podnet serve`; None when it has none."""
        assert self.serve is not None
        try:
            resp = self.serve.request({"op": "drain", "pod": name})
        except ServeError as e:
            log.warning("serve drain %s: %s", name, e)
            return None
        return int(resp.get("inflight") or 0) if resp.get("found") else None


def delete_for_good(store: Datastore, writer: Writer, pod: Pod, deleting: Callable[[str], None],
                    attempts: int = 10) -> bool:
    """The kubelet's last step: delete the pod with grace 0, only the one it stopped (its
    uid), CAS on its revision; `deleting(uid)` is called just before. True when deleted
    here; False when it was gone or replaced already (or kept changing)."""
    for _ in range(attempts):
        try:
            cur = store.get("Pod", pod.namespace, pod.name)
            if cur.uid != pod.uid:
                return False
            deleting(pod.uid)
            writer.delete("Pod", pod.namespace, pod.name, revision=cur.resource_version, grace_period=0)
            return True
        except NotFound:
            return False
        except Conflict:
            continue
    log.warning("pod %s/%s: not deleted after termination (conflicting writes)", pod.namespace, pod.name)
    return False
