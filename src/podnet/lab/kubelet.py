"""The lab kubelet: Pods and Deployments from the store, made real in network namespaces.

One process per lab. One loop keeps Pods, Deployments and Nodes from list+watch (Informer)
and decides (lab/workloads.py schedules over the nodes lab/kubelet_nodes.py knows;
lab/deployments.py creates and deletes a Deployment's Pods); a pool of workers does the
slow part, serialised per pod: the pod's netns, CNI ADD in the node's netns as a runtime
does (lab/network.py), its resolv.conf, the node's `podnet serve` listening on its
containerPorts (a container with a `command` runs as its own process: lab/containers.py),
then status and the `podnet.io/netns` annotation (lab/pod_status.py). A terminating pod
(deletionTimestamp) is stopped gracefully (lab/termination.py: preStop hook, SIGTERM, the
grace period, SIGKILL), its sandbox torn down (lab/sandbox.py; CNI DEL releases its IPs),
and only then is the object deleted for good (grace 0, on its uid and revision), as a
kubelet does (issue 17 §1). A pod deleted for good at once (grace 0) is torn down at once.
What it set up is also written to `<lab>/pods/<netns>-<pod>.json` (lab/records.py), so a
restarted kubelet (or `podnet down`) can undo it for pods whose object is already gone.
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.api.objects import Deployment, Pod, Resource
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.datastore.common import now_rfc3339
from podnet.datastore.cache import Batch, Informer
from podnet.datastore.interface import Conflict, Datastore, Event, NotFound
from podnet.lab import containers, network, probes, procs, sandbox, termination
from podnet.lab.deployments import collect_garbage, reconcile_deployment
from podnet.lab.pod_status import StatusWriter
from podnet.lab.records import PodRecords
from podnet.lab.state import LabState
from podnet.lab.kubelet_nodes import LabNodes
from podnet.lab.topology import LabSpec
from podnet.lab.workloads import node_load, schedule

log = logging.getLogger("podnet.kubelet")
WORKERS = 8
STOPPERS = 32  # pods ending at once (a preStop hook or a slow drain holds its thread)
RETRY_AFTER = 2.0
RETRY_MAX = 30.0
LIVENESS_EVERY = 2.0


class Kubelet:
    def __init__(self, spec: LabSpec, state: LabState, store: Datastore, node_url: str,
                 cni_url: str = "", pod_url: str = "", node_cni_urls: dict[str, str] | None = None):
        self.nodes = LabNodes(spec, state, node_cni_urls or {})
        self.state = state
        self.store = store
        self.writer = Writer(store)  # every write goes through the one write path
        self.status = StatusWriter(self.writer)
        self.node_url = node_url
        self.cni_url = cni_url or node_url  # the IPAM plugin's, in the network config
        self.pod_url = pod_url or node_url  # what containers with a command get (DNS)
        self.pods: dict[tuple[str, str], Pod] = {}
        self.deployments: dict[tuple[str, str], Deployment] = {}
        self.events: queue.Queue[Batch | tuple[str, tuple[str, str]]] = queue.Queue()
        self.informer = Informer(store, ("Pod", "Deployment", "Node"), self.events.put, name="kubelet")
        self.started = False  # orphans are cleaned once, after the first list
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pod")
        # terminations wait (hooks, grace periods): apart, so they never hold up a setup
        self.stoppers = ThreadPoolExecutor(STOPPERS, thread_name_prefix="stop")
        self.locks: dict[tuple[str, str], threading.Lock] = {}
        # pod key -> (uid, ips, host ips, netns, message, started) of what is set up
        self.running: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.procs: dict[tuple[str, str], dict[str, int]] = {}  # containers with a command
        self.restarts: dict[tuple[str, str], dict[str, int]] = {}
        self.failures: dict[tuple[str, str], int] = {}  # consecutive setup failures (back-off)
        self.next_restart: dict[tuple[str, str], float] = {}
        self.dirty: set[tuple[str, str]] = set()  # Deployments to reconcile after this batch
        self.load: dict[str, int] | None = None  # pods per node, while a batch is scheduled
        self.revision = 0
        self.records = PodRecords(state.path("pods"))
        self.readiness: dict[tuple[str, str], bool] = {}  # pods with a readinessProbe
        self.prober = probes.Prober(self._readiness_changed)
        self.terminating: set[tuple[str, str]] = set()  # pods being stopped gracefully
        self.finalized: set[str] = set()  # uids we deleted for good (their DELETED is ours)

    # ---- cache --------------------------------------------------------------------------
    def relist(self) -> None:
        """Take Pods, Deployments and Nodes from the informer's cache. Its revision is read first:
        events up to it are skipped afterwards, and a later one the cache already has is
        only applied again (never lost)."""
        self.revision = self.informer.revision
        self.pods = {(p.namespace, p.name): p for p in self.informer.list("Pod") if isinstance(p, Pod)}
        self.deployments = {(d.namespace, d.name): d for d in self.informer.list("Deployment")
                            if isinstance(d, Deployment)}
        self.nodes.relisted(self.informer.list("Node"))

    # ---- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        self.informer.start()
        try:
            while not self.informer.wait_synced(0.5):  # the store may not be up yet
                if self.stop.is_set():
                    return
            self._loop()
        finally:
            self.informer.stop()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.stoppers.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        threading.Thread(target=self.prober.loop, args=(self.stop,), daemon=True, name="probes").start()
        next_check = time.monotonic() + LIVENESS_EVERY
        while not self.stop.is_set():
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + LIVENESS_EVERY
                self.check_containers()
            try:
                batch = [self.events.get(timeout=0.5)]
            except queue.Empty:
                continue
            self.load = None
            while len(batch) < 500:  # what has queued up meanwhile, in one go
                try:
                    batch.append(self.events.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                try:
                    self.handle(item)
                except Exception:  # noqa: BLE001 - never crash the kubelet on one object
                    log.exception("handling %r", item)
            # a Deployment touched by many pod events in the batch is reconciled once
            dirty, self.dirty = self.dirty, set()
            for key in sorted(dirty):
                dep = self.deployments.get(key)
                if dep is not None:
                    try:
                        reconcile_deployment(self.writer, self.pods, dep)
                    except Exception:  # noqa: BLE001
                        log.exception("deployment %s/%s", *key)

    def handle(self, item: Batch | tuple[str, tuple[str, str]]) -> None:
        """A batch from the informer, or a ("retry", pod key) from a back-off timer."""
        if isinstance(item, tuple):
            pod = self.pods.get(item[1])
            if pod is not None:
                self.reconcile_pod(pod)
            return
        if item.resync:  # the first list, or a relist after compaction
            self.relist()
            if not self.started:
                self.cleanup_orphans()
                self.started = True
            self.reconcile_all()
            return
        for ev in item.events:
            if ev.revision > self.revision:
                self.handle_event(ev)
                self.revision = ev.revision

    def handle_event(self, ev: Event) -> None:
        obj = ev.object
        key = (obj.namespace, obj.name)
        if obj.kind == "Node":
            if self.nodes.event(ev.type, obj):  # a node joined or left: pods waiting for it go on
                for pod in [p for p in self.pods.values() if p.node_name and (p.namespace, p.name) not in self.running]:
                    self.reconcile_pod(pod)
            return
        if isinstance(obj, Deployment):
            if ev.type == "DELETED":
                self.deployments.pop(key, None)
                collect_garbage(self.writer, self.pods, obj)
            else:
                self.deployments[key] = obj
                self.dirty.add(key)
            return
        if not isinstance(obj, Pod):
            return
        if ev.type == "DELETED":
            self.pods.pop(key, None)
            if obj.uid in self.finalized:
                self.finalized.discard(obj.uid)  # torn down before we deleted it
            else:
                self.submit(key, lambda: self.teardown(key, obj))
        else:
            self.pods[key] = obj
            self.reconcile_pod(obj)
        for ref in obj.metadata.get("ownerReferences") or []:
            dep = self.deployments.get((obj.namespace, str(ref.get("name"))))
            if dep is not None and ref.get("uid") == dep.uid:
                self.dirty.add((dep.namespace, dep.name))

    def reconcile_all(self) -> None:
        for dep in list(self.deployments.values()):
            reconcile_deployment(self.writer, self.pods, dep)
        for pod in list(self.pods.values()):
            self.reconcile_pod(pod)
        # a pod deleted while we were not watching
        for rec in self.records.all():
            key = (rec["namespace"], rec["name"])
            cur = self.pods.get(key)
            if cur is None or cur.uid != rec["uid"]:
                self.submit(key, functools.partial(self.teardown_record, rec))

    # ---- Pods --------------------------------------------------------------------------
    def reconcile_pod(self, pod: Pod) -> None:
        key = (pod.namespace, pod.name)
        if pod.deletion_timestamp:
            if key not in self.terminating:
                self.terminating.add(key)
                self.submit(key, functools.partial(self.terminate, key, pod), self.stoppers)
            return
        if not pod.node_name:
            names = self.nodes.schedulable()  # pods per node: counted once a batch, then kept
            self.load = node_load(names, self.pods.values()) if self.load is None else self.load
            node = schedule(pod, names, (), self.load)
            if node is None:
                return
            spec = dict(pod.spec)
            spec["nodeName"] = node
            try:
                pod = self.writer.update(pod.with_spec(spec))  # type: ignore[assignment]
            except (Conflict, NotFound, WriteError):
                return  # a newer version is on its way to us
            self.pods[key] = pod
            self.load[node] = self.load.get(node, 0) + 1
        done = self.running.get(key)
        if done is not None and done[0] == pod.uid and pod.ready == self.readiness.get(key, True) \
                and pod.annotations.get(NETNS_ANNOTATION) == done[3]:
            return
        self.submit(key, lambda: self.setup(key))

    def submit(self, key: tuple[str, str], fn: Callable[[], None],
               pool: ThreadPoolExecutor | None = None) -> None:
        lock = self.locks.setdefault(key, threading.Lock())

        def job() -> None:
            with lock:
                try:
                    fn()
                except Exception:  # noqa: BLE001
                    log.exception("pod %s/%s", *key)
        (pool or self.pool).submit(job)

    def _retry_later(self, key: tuple[str, str]) -> float:
        """Kubernetes' back-off: 2 s, doubling per failure, at most 30 s."""
        n = self.failures[key] = self.failures.get(key, 0) + 1
        delay = min(RETRY_AFTER * 2 ** (n - 1), RETRY_MAX)
        t = threading.Timer(delay, lambda: self.events.put(("retry", key)))
        t.daemon = True
        t.start()
        return delay

    def setup(self, key: tuple[str, str]) -> None:
        pod = self.pods.get(key)
        if pod is None or not pod.node_name or pod.deletion_timestamp:
            return
        done = self.running.get(key)
        if done is not None and done[0] == pod.uid:
            self.status.running(pod, *done[1:], ready=self._ready(key))  # already set up: only the status may lag
            return
        t0 = time.monotonic()
        try:
            node = self.nodes.spec.node(pod.node_name)
        except ValueError as e:
            self.status.pending(pod, "NodeNotFound", str(e))
            return
        host_net = pod.host_network
        netns = node.netns if host_net else self.nodes.spec.pod_netns(pod.uid)
        old = self.records.read(netns)
        adopt = (old is not None and old.get("uid") == pod.uid and old.get("ips")
                 and os.path.exists(f"/var/run/netns/{netns}"))
        rec = {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid, "node": node.name,
               "netns": netns, "hostNetwork": host_net}
        self.records.write(rec)
        attached = False
        try:
            if host_net:
                ips = node.ips
            elif adopt:
                ips = list(old["ips"])  # type: ignore[index]  # set up by an earlier kubelet
            else:
                ips = network.attach(self.nodes.spec, self.cni_url_of(node.name), node, netns, pod.uid, pod.requested_ips)
                attached = True
                network.write_resolv_conf(self.nodes.spec, pod, netns)
            self.records.write({**rec, "ips": ips})
            warnings = sandbox.start_workload(self.nodes.serve[node.name], pod, netns)
            if containers.with_command(pod):
                containers.stop(self.state, netns, pod.name)  # an earlier, failed attempt
                pids = containers.start(self.state, pod, netns, self.pod_url)
                containers.wait_ready(pod, netns, pids)
                self.procs[key] = pids
        except Exception as e:  # noqa: BLE001 - undo, report on the pod, retry
            log.warning("pod %s/%s: %s", *key, e)
            if attached or not adopt:
                self.teardown_record(rec)  # like a runtime: a failed sandbox is removed whole
            delay = self._retry_later(key)
            reason = "CrashLoopBackOff" if isinstance(e, containers.ContainerError) else "ContainerCreating"
            self.status.pending(pod, reason, f"{e} (retry in {delay:.0f}s)")
            return
        for w in warnings:
            log.warning("pod %s/%s: %s", pod.namespace, pod.name, w)
        self.failures.pop(key, None)
        self.next_restart.pop(key, None)
        probe = probes.readiness_probe(pod)
        if probe is not None:
            self.readiness[key] = self.prober.first(key, netns, probe, probes.env_of(pod, dict(os.environ)))
        info = (pod.uid, ips, node.ips, netns, "; ".join(warnings), now_rfc3339())
        self.running[key] = info
        t_net = time.monotonic()
        self.status.running(pod, *info[1:], ready=self._ready(key))
        log.info("pod %s/%s on %s: %s in %s (network+workload %.0f ms, status %.0f ms)",
                 pod.namespace, pod.name, node.name, ", ".join(ips), netns,
                 1000 * (t_net - t0), 1000 * (time.monotonic() - t_net))

    def _ready(self, key: tuple[str, str]) -> bool:
        return self.readiness.get(key, True)  # a pod without a readinessProbe is ready

    def _readiness_changed(self, key: tuple[str, str], ready: bool) -> None:
        """The prober's thread: record the new readiness, and let a worker write it."""
        self.readiness[key] = ready
        log.info("pod %s/%s: readiness probe %s", *key, "passes" if ready else "fails")
        if key not in self.terminating:  # an ending pod's status is left as it is
            self.submit(key, lambda: self.setup(key))

    def check_containers(self) -> None:
        """restartPolicy Always: a container process that exited is started again."""
        now = time.monotonic()
        for key, pids in list(self.procs.items()):
            dead = {name for name, pid in pids.items() if not procs.alive(pid)}
            if dead and now >= self.next_restart.get(key, 0.0):
                n = max((self.restarts.get(key) or {}).values(), default=0)
                self.next_restart[key] = now + min(RETRY_AFTER * 2 ** n, RETRY_MAX)  # back-off
                self.submit(key, functools.partial(self.restart, key, dead))

    def restart(self, key: tuple[str, str], dead: set[str]) -> None:
        pod, done = self.pods.get(key), self.running.get(key)
        pids = self.procs.get(key)
        if pod is None or done is None or pids is None or done[0] != pod.uid:
            return
        netns = done[3]
        containers.stop(self.state, netns, pod.name, sorted(dead))
        pids.update(containers.start(self.state, pod, netns, self.pod_url, only=dead))
        counts = self.restarts.setdefault(key, {})
        for name in dead:
            counts[name] = counts.get(name, 0) + 1
            log.warning("pod %s/%s: container %s exited; restarted (%d)", *key, name, counts[name])

        def mutate(cur: Resource) -> Resource:
            st = dict(cur.status)
            st["containerStatuses"] = [{**cs, "restartCount": counts.get(cs.get("name"), cs.get("restartCount", 0))}
                                       for cs in st.get("containerStatuses") or []]
            return cur.with_status(st)
        self.status.update(pod, mutate)

    def terminate(self, key: tuple[str, str], pod: Pod) -> None:
        """Stop the pod within its grace period, tear it down, delete it for good."""
        try:
            done = self.running.get(key)
            pids = self.procs.pop(key, None) or {}
            self.prober.forget(key)
            netns = done[3] if done is not None and done[0] == pod.uid else ""
            what = termination.Stopper(pod, netns, self.nodes.serve.get(pod.node_name), pids,
                                       functools.partial(self._cut, key, pod)).run()
            self.teardown(key, pod)
            self._finalize(pod)
            log.info("pod %s/%s terminated: %s", *key, what)
        finally:
            self.terminating.discard(key)

    def _cut(self, key: tuple[str, str], pod: Pod, start: float) -> bool:
        """Stop waiting: the pod was deleted for good, or its grace was shortened."""
        cur = self.pods.get(key)
        if cur is None or cur.uid != pod.uid:
            return True
        return time.monotonic() >= start + termination.grace_of(cur)

    def _finalize(self, pod: Pod) -> None:
        if not termination.delete_for_good(self.store, self.writer, pod, self.finalized.add):
            self.finalized.discard(pod.uid)

    def teardown(self, key: tuple[str, str], obj: Resource) -> None:
        self.prober.forget(key)
        kept: list[dict[tuple[str, str], Any]] = [self.running, self.readiness, self.procs, self.restarts,
                                                  self.failures, self.next_restart]
        for d in kept:
            d.pop(key, None)
        self.teardown_record(sandbox.record_of(self.nodes.spec, self.records, key, obj))

    def teardown_record(self, rec: dict[str, Any]) -> None:
        sandbox.undo(self.nodes.spec, self.state, self.nodes.serve, self.cni_url_of(str(rec.get("node") or "")),
                     self.records, rec)

    def cni_url_of(self, node: str) -> str:
        return self.nodes.cni_urls.get(node) or self.cni_url

    def cleanup_orphans(self) -> None:
        sandbox.remove_orphans(self.nodes.spec, self.records)
