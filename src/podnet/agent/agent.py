"""The node agent loop: Informer (list+watch) -> ClusterState -> roles -> kernel.

Felix's shape: events only update the in-memory `ClusterState` and record which keys
changed; nothing touches the kernel until the first full list is in (in sync); then each
batch of changes becomes ONE `nft -f` transaction of every role's fragment, followed by
each role's non-nftables kernel work (routes). A failed transaction makes every role
render a full sync next time. The agent also registers its Node (addresses, VXLAN MAC,
blocks, health, heartbeat, sync counts) so `podnet get nodes -o wide` can show it.

The roles are routes (or, with routing "bgp", BGP through BIRD), the service proxy,
NetworkPolicy and NAT outgoing (`load_roles`).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from podnet.api import defaults
from podnet.api.core import AGENT_ANNOTATION
from podnet.api.objects import ObjectKey, Resource
from podnet.calc.model import ClusterState
from podnet.calc.encap import SUBNET_FIELDS
from podnet.calc.routes import MAC_STATUS_FIELD, vtep_mac
from podnet.agent.metrics import AgentMetrics
from podnet.agent.node_status import NodeReport, register as register_node
from podnet.agent.healthcheck import HealthCheckRole
from podnet.agent.bgp_role import BgpRole
from podnet.agent.nat_role import NatRole
from podnet.agent.policy_role import PolicyRole
from podnet.agent.role import Role
from podnet.agent.routes_role import RoutesRole
from podnet.agent.service_proxy_role import NoServiceProxyRole, ServiceProxyRole
from podnet.dataplane.nft.runner import NftError, NftRunner
from podnet.dataplane.nft.session import NftSession
from podnet.dataplane.net.links import interface_prefixes
from podnet.datastore.common import now_rfc3339
from podnet.datastore.cache import Batch, Informer
from podnet.datastore.interface import Datastore, DatastoreError

log = logging.getLogger("podnet.agent")

BATCH_WINDOW = 0.02  # seconds to gather events into one sync
HEARTBEAT_EVERY = defaults.AGENT_HEARTBEAT_EVERY
FULL_RESYNC_EVERY = 300.0
DEFAULT_BIRD_DIR = "/run/podnet/bird"  # a real node's; the lab gives each node its own
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # a failed sync is retried (in full) with back-off


@dataclass
class AgentContext:
    node_name: str
    node_ips: list[str]
    encap: str = "none"
    netns: str | None = None  # None: the agent runs inside its node's netns
    store: Datastore | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def ip4(self) -> str | None:
        return next((ip for ip in self.node_ips if ":" not in ip), None)


def load_roles(ctx: AgentContext) -> list[Role]:
    """The node's roles, in the order their kernel work is applied: routes first (pods
    must be reachable), then the service proxy, policy and NAT outgoing."""
    routing = str(ctx.options.get("routing") or "static")
    roles: list[Role] = [RoutesRole(ctx.node_name, ctx.ip4, ctx.encap, ctx.netns, routing)]
    if routing == "bgp":
        roles.append(BgpRole(ctx.node_name, str(ctx.options.get("bird_dir") or DEFAULT_BIRD_DIR),
                             ctx.netns, ctx.encap))
    if ctx.options.get("services") == "kube-proxy":
        # Services are kube-proxy's (Calico's default with eBPF off): no service proxy, no
        # health-check listeners (kube-proxy serves healthCheckNodePort itself)
        return roles + [NoServiceProxyRole(), PolicyRole(ctx.node_name), NatRole()]
    return roles + [ServiceProxyRole.from_context(ctx), PolicyRole(ctx.node_name), NatRole(),
                    HealthCheckRole(ctx.netns)]


class Agent:
    def __init__(self, ctx: AgentContext, roles: list[Role] | None = None,
                 clock: Callable[[], float] = time.monotonic, use_session: bool = True):
        if ctx.store is None:
            raise ValueError("AgentContext.store is required")
        self.ctx = ctx
        self.store: Datastore = ctx.store
        self.roles = load_roles(ctx) if roles is None else roles
        self.state = ClusterState(node_name=ctx.node_name)
        self.nft: NftRunner | NftSession = NftSession(ctx.netns) if use_session else NftRunner(ctx.netns)
        self.metrics = AgentMetrics()
        self.after_sync: list[Callable[[], None]] = []
        self.kinds = tuple(sorted({"Node", "IPAMBlock"} | {k for r in self.roles for k in r.kinds}))
        self.events: queue.Queue[Batch] = queue.Queue()
        self.informer = Informer(self.store, self.kinds, on_batch=self.events.put,
                                 batch_window=BATCH_WINDOW, name=f"agent-{ctx.node_name}")
        self.stop = threading.Event()
        self.clock = clock
        self.syncs = 0
        self.failures = 0
        self.last_error = ""
        self.revision = 0
        self._full_needed = True
        self._published_blocks: list[str] = []
        self._subnet_fields: dict[str, str] | None = None

    # ---- store side ---------------------------------------------------------------
    def relist(self) -> None:
        """Rebuild the state from the informer's cache (consistent at its revision)."""
        objs: list[Resource] = []
        for kind in self.kinds:
            objs.extend(self.informer.list(kind))
        self.state = ClusterState.from_objects(objs, self.ctx.node_name)
        self.revision = self.informer.revision
        self._full_needed = True

    # ---- kernel side --------------------------------------------------------------
    def sync(self, changed: set[ObjectKey] | None) -> bool:
        full = changed is None or self._full_needed
        t0 = time.perf_counter()
        frags = []
        took: dict[str, float] = {}  # role -> its own render and kernel seconds
        work: dict[str, str] = {}  # role -> "full"/"partial" when the sync concerned it
        for role in self.roles:
            t = time.perf_counter()
            try:
                mine = None if full else {k for k in changed or () if k.kind in role.kinds}
                if full or mine:
                    work[role.name] = "full" if full else "partial"
                frags.append(role.nft_fragment(self.state, mine))
            except Exception:  # noqa: BLE001
                log.exception("role %s: render failed", role.name)
            took[role.name] = time.perf_counter() - t
        script = "\n".join(f for f in frags if f and f.strip())
        ok = True
        t = time.perf_counter()
        try:
            self._apply(script)
        except NftError as e:
            ok = False
            self.last_error = str(e)
            log.error("%s", e)
        shared = time.perf_counter() - t
        for role in self.roles:
            role.committed(ok)
        failed: set[str] = set() if ok else set(work)
        for role in self.roles:
            t = time.perf_counter()
            try:
                role.apply_kernel(self.state)
            except Exception as e:  # noqa: BLE001 - retried at the next sync
                ok = False
                failed.add(role.name)
                self.last_error = f"{role.name}: {e}"
                log.exception("role %s: kernel apply failed", role.name)
            took[role.name] = took.get(role.name, 0.0) + time.perf_counter() - t
        for name, kind in work.items():
            self.metrics.role(name).record(kind, took.get(name, 0.0) + shared, name not in failed)
        self.metrics.agent.record("full" if full else "partial", time.perf_counter() - t0, ok)
        self._full_needed = not ok
        self.syncs += 1
        for hook in self.after_sync:  # e.g. the flow records' names and rule ids (issue 18)
            try:
                hook()
            except Exception:  # noqa: BLE001 - an observer must not stop the agent
                log.exception("after-sync hook failed")
        if not ok:
            self.failures += 1
        else:
            self.last_error = ""
        return ok

    def _apply(self, script: str) -> None:
        """Through the long-lived nft session (a partial sync then costs ~1 ms, not an
        `nft` start-up); if the session itself cannot run (no libnftables), fall back to
        `nft -f` for good. A refused transaction is an NftError either way."""
        if isinstance(self.nft, NftSession):
            try:
                self.nft.apply(script)
                return
            except NftError as e:
                if "died" not in str(e):
                    raise
                log.warning("nft session unusable (%s); using nft -f", e)
                self.nft.close()
                self.nft = NftRunner(self.ctx.netns)
        self.nft.apply(script)

    # ---- Node registration ----------------------------------------------------------
    def _own_blocks(self) -> list[str]:
        return sorted(str(b.spec.get("cidr")) for b in self.state.of_kind("IPAMBlock")
                      if b.spec.get("affinity") == f"host:{self.ctx.node_name}")

    def _subnets(self) -> dict[str, str]:
        """Calico's ipv4Address/ipv6Address: the node's addresses with their interface's
        prefix length, so others can tell whether it shares their subnet (CrossSubnet)."""
        if self._subnet_fields is None:
            try:
                found = interface_prefixes(self.ctx.netns, self.ctx.node_ips)
            except Exception as e:  # not fatal: CrossSubnet then encapsulates to this node
                log.warning("cannot read the node's interface subnets: %s", e)
                return {}
            self._subnet_fields = {SUBNET_FIELDS[ipaddress.ip_interface(v).version]: v
                                   for v in sorted(found.values(), key=lambda v: ":" in v)}
        return self._subnet_fields

    def report(self) -> NodeReport:
        """What the agent reports of its node (`node_status.py` writes it: the store's
        status fields, or, through the Kubernetes API, annotations and one condition)."""
        blocks = self._own_blocks()
        self._published_blocks = blocks
        health = "healthy" if not self.last_error else "degraded"
        agent = {"health": health, "heartbeat": now_rfc3339(), "syncs": self.syncs,
                 "syncFailures": self.failures, "lastError": self.last_error,
                 "roles": [r.name for r in self.roles], "sync": self.metrics.status()}
        podnet: dict[str, Any] = {"blocks": blocks, "encap": self.ctx.encap}
        if self.ctx.ip4:
            podnet[MAC_STATUS_FIELD] = vtep_mac(self.ctx.ip4)
        podnet.update(self._subnets())
        # as a kubelet reports them: the CPUs this node may use (topology-mode Auto weighs
        # zones by them); the lab's nodes share the machine's
        cpus = {"cpu": str(len(os.sched_getaffinity(0)))}
        own = {str(k): str(v) for k, v in (self.ctx.options.get("node_labels") or {}).items()}
        return NodeReport(self.ctx.node_name, list(self.ctx.node_ips), agent, podnet,
                          not self.last_error, _version(), own, cpus)

    def node_status(self) -> dict[str, Any]:
        """The Node status the agent writes to a store (other writers' fields aside)."""
        return self.report().store_status({})

    def register(self) -> None:
        """Create or update our Node with the agent's report and the labels it was given
        (`--node-label`, as kubelet's --node-labels; e.g. topology.kubernetes.io/zone);
        other labels, the spec and other writers' status fields are kept."""
        register_node(self.store, self.report())

    # ---- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        self.informer.start()
        try:
            # nothing touches the kernel before the first full list (Felix's rule)
            while not self.informer.wait_synced(0.5):
                if self.stop.is_set():
                    return
            self.relist()
            self._loop()
        finally:
            self.informer.stop()
            if isinstance(self.nft, NftSession):
                self.nft.close()

    def _loop(self) -> None:
        self.sync(None)
        self.register()
        next_beat = self.clock() + HEARTBEAT_EVERY
        next_full = self.clock() + FULL_RESYNC_EVERY
        retry_in, retry_at = RETRY_FIRST, self.clock() + RETRY_FIRST
        while not self.stop.is_set():
            wait = min(1.0, max(0.0, next_beat - self.clock()))
            if self._full_needed:
                wait = min(wait, max(0.0, retry_at - self.clock()))
            changed: set[ObjectKey] | None
            changed, relist = self._gather(timeout=wait)
            if relist:
                self.relist()
                changed = None
            now = self.clock()
            if now >= next_full:
                changed, next_full = None, now + FULL_RESYNC_EVERY
            if self._full_needed and now >= retry_at:
                changed = None  # the last sync failed and nothing new came: try again, whole
            if changed is None or changed:
                if self.sync(changed):
                    retry_in = RETRY_FIRST
                else:
                    retry_at, retry_in = now + retry_in, min(retry_in * 2, RETRY_MAX)
            if now >= next_beat or changed is None or self._own_blocks() != self._published_blocks:
                next_beat = now + HEARTBEAT_EVERY
                try:
                    self.register()
                except DatastoreError as e:
                    log.warning("heartbeat failed: %s", e)

    def _gather(self, timeout: float) -> tuple[set[ObjectKey], bool]:
        """Apply the informer's queued batches to the state; return the changed keys
        (no-ops, like our own heartbeats, dropped) and whether a relist happened."""
        changed: set[ObjectKey] = set()
        try:
            batches: list[Batch] = [self.events.get(timeout=timeout)]
        except queue.Empty:
            return changed, False
        while True:
            try:
                batches.append(self.events.get_nowait())
            except queue.Empty:
                break
        # the informer's (re)list that our own relist already read (its first list, at
        # start) is not news: taking it again would cost a second full sync
        batches = [b for b in batches if not (b.resync and b.revision <= self.revision)]
        if any(b.resync for b in batches):
            return changed, True  # the informer relisted: take its cache whole
        for batch in batches:
            self.revision = max(self.revision, batch.revision)
            for ev in batch.events:
                obj = ev.object
                old = self.state.get(obj.kind, obj.namespace, obj.name)
                if ev.type == "DELETED":
                    if old is not None:
                        self.state.remove(obj.kind, obj.namespace, obj.name)
                        changed.add(obj.key)
                elif old is None or _content(old) != _content(obj):
                    self.state.put(obj)
                    changed.add(obj.key)
                else:
                    self.state.put(obj)
        return changed, False


def _content(obj: Resource) -> Any:
    """An object minus what changes on every write (resourceVersion, heartbeats)."""
    d = obj.to_dict()
    d.get("metadata", {}).pop("resourceVersion", None)
    (d.get("metadata", {}).get("annotations") or {}).pop(AGENT_ANNOTATION, None)
    st = d.get("status")
    if obj.kind == "Node" and isinstance(st, dict):
        st.pop("conditions", None)
        st.pop("agent", None)
    return d


def _version() -> str:
    try:
        from importlib.metadata import version
        return "podnet/" + version("podnet")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "podnet"
