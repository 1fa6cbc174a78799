"""The node agent's service proxy role: ClusterState -> calc.services -> nft text for
table `inet podnet-svc`, full or partial, with the rendered state kept in memory.

Events are cheap: `nft_fragment(state, changed)` recomputes only the Services that the
changed keys touch (a Service itself, or an EndpointSlice labelled with its name, found
through an index of which slice belonged to which Service, so deletions are attributed
too). The kernel is never listed (a change of the node's zone label recomputes every Service:
topology hints choose by zone). A failed transaction (`committed(False)`) drops the
memory, and the next sync recreates the table whole. The agent asks for a full sync now
and then (changed=None) to repair drift; that one flushes rather than deletes, so ClientIP
affinity survives it.

Metrics are plain attributes (`full_syncs`, `partial_syncs`, `failed_syncs`,
`last_sync_seconds`, ...) and `metrics_text()` renders them for a Prometheus endpoint.
"""
from __future__ import annotations

import gc
import logging
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from podnet.api.objects import EndpointSlice, Node, ObjectKey, Service
from podnet.calc.model import ClusterState
from podnet.calc.services import (ServicePortEntry, StaleFlow, build_table, entries_for_service,
                                  node_ips_of, stale_udp_flows)
from podnet.dataplane.net.conntrack import delete_udp_flows
from podnet.calc.service_paths import pod_cidrs_of
from podnet.calc.topology import zone_of
from podnet.dataplane.nft.services import T as SVC_TABLE, Rendered, render_full, render_partial

log = logging.getLogger(__name__)
SvcKey = tuple[str, str]
EntryKey = tuple[str, int]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A full sync at 10k services allocates ~10^6 small objects that all stay alive; the
    cyclic collector would rescan them again and again (about half of the render time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class ServiceProxyRole:
    name = "services"
    kinds = ("Service", "EndpointSlice", "Node", "IPPool")

    def __init__(self, node_ips: Sequence[str] = (), *, conntrack: bool = False,
                 netns: str | None = None):
        """`conntrack=True`: after a sync, delete UDP flows to endpoints that left (in
        `netns`, or in the agent's own namespace when None: only the agent, running in its
        node, may pass that)."""
        self.extra_node_ips = tuple(node_ips)
        self.conntrack = conntrack
        self.netns = netns
        self._entries: dict[EntryKey, ServicePortEntry] = {}
        self._stale_udp: list[StaleFlow] = []  # conntrack entries to forget after the sync
        self._rendered: Rendered | None = None
        self._slice_owner: dict[SvcKey, SvcKey] = {}  # slice (ns, name) -> service (ns, name)
        self._slices_of: dict[SvcKey, set[SvcKey]] = {}
        self._entries_of: dict[SvcKey, set[EntryKey]] = {}
        self._zone_now = ""  # this node's topology.kubernetes.io/zone, as the entries saw it
        self._started = 0.0
        self._kind = ""
        self.full_syncs = 0
        self.partial_syncs = 0
        self.failed_syncs = 0
        self.last_sync_kind = ""
        self.last_sync_seconds = 0.0
        self.last_render_seconds = 0.0
        self.sync_seconds_total = 0.0

    @classmethod
    def from_context(cls, ctx) -> "ServiceProxyRole":
        """Built by the agent (agent.AgentContext): NodePorts also listen on ctx.node_ips."""
        return cls(tuple(getattr(ctx, "node_ips", ()) or ()), conntrack=True,
                   netns=getattr(ctx, "netns", None))

    # ---- Role protocol ------------------------------------------------------------------
    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        self._started = time.perf_counter()
        if changed is None or self._rendered is None:
            with _gc_paused():
                text = self._full(state)
            self._kind = "full"
        else:
            text = self._partial(state, changed)
            self._kind = "partial" if text else ""
        self.last_render_seconds = time.perf_counter() - self._started
        return text

    def committed(self, ok: bool) -> None:
        if not self._kind and ok:
            return
        took = time.perf_counter() - self._started
        self.last_sync_seconds, self.last_sync_kind = took, self._kind
        self.sync_seconds_total += took
        if not ok:
            self.failed_syncs += 1
            self._rendered = None
        elif self._kind == "full":
            self.full_syncs += 1
        else:
            self.partial_syncs += 1
        self._kind = ""

    def apply_kernel(self, state: ClusterState) -> None:
        stale, self._stale_udp = self._stale_udp, []
        if not self.conntrack:
            return
        for f in stale:
            delete_udp_flows(self.netns, f.endpoint, f.dst, f.node_port)

    # ---- convenience for a standalone proxy, tests and bench -----------------------------
    def sync(self, state: ClusterState, changed: set[ObjectKey] | None, runner) -> str:
        """One sync through `runner.apply` (NftRunner or NftSession); returns the script."""
        text = self.nft_fragment(state, changed)
        try:
            runner.apply(text)
        except Exception:
            self.committed(False)
            raise
        self.committed(True)
        self.apply_kernel(state)
        return text

    @property
    def service_ports(self) -> int:
        return len(self._rendered.entries) if self._rendered else 0

    def status(self) -> dict[str, object]:
        """For the Node's status (what `podnet get nodes -o wide` / describe can show)."""
        return {"fullSyncs": self.full_syncs, "partialSyncs": self.partial_syncs,
                "failedSyncs": self.failed_syncs, "lastSync": self.last_sync_kind,
                "lastSyncSeconds": round(self.last_sync_seconds, 6),
                "servicePorts": self.service_ports}

    def metrics_text(self) -> str:
        p = "podnet_service_proxy"
        return "\n".join([
            f'{p}_syncs_total{{kind="full"}} {self.full_syncs}',
            f'{p}_syncs_total{{kind="partial"}} {self.partial_syncs}',
            f"{p}_sync_failures_total {self.failed_syncs}",
            f"{p}_last_sync_seconds {self.last_sync_seconds:.6f}",
            f"{p}_sync_seconds_total {self.sync_seconds_total:.6f}",
            f"{p}_service_ports {self.service_ports}",
        ]) + "\n"

    # ---- internals ----------------------------------------------------------------------
    def _node_ips(self, state: ClusterState) -> tuple[str, ...]:
        node = state.get("Node", "", state.node_name) if state.node_name else None
        return node_ips_of(node if node is not None else None, self.extra_node_ips)  # type: ignore[arg-type]

    def _zone(self, state: ClusterState) -> str:
        node = state.get("Node", "", state.node_name) if state.node_name else None
        return zone_of(node if isinstance(node, Node) else None)

    def _full(self, state: ClusterState) -> str:
        self._slice_owner, self._slices_of, self._entries_of = {}, {}, {}
        slices = state.endpoint_slices
        for s in slices:
            self._index_slice(s)
        services = []
        for svc in state.services:
            services.append(svc)
        self._zone_now = self._zone(state)
        table = build_table(services, slices, self._node_ips(state), state.node_name,
                            pod_cidrs_of(state.ippools), self._zone_now)
        for k, old in self._entries.items():  # a resync may carry changes a partial missed
            if old.protocol == "UDP":
                self._stale_udp += stale_udp_flows(old, table.entries.get(k))
        self._entries = dict(table.entries)
        for key, e in table.entries.items():
            self._entries_of.setdefault(e.service_key, set()).add(key)
        text, self._rendered = render_full(table, self._rendered)
        return text

    def _index_slice(self, s: EndpointSlice) -> None:
        if s.service_name:
            svc = (s.namespace, s.service_name)
            self._slice_owner[(s.namespace, s.name)] = svc
            self._slices_of.setdefault(svc, set()).add((s.namespace, s.name))

    def _unindex_slice(self, key: SvcKey) -> SvcKey | None:
        svc = self._slice_owner.pop(key, None)
        if svc is not None:
            self._slices_of.get(svc, set()).discard(key)
        return svc

    def _partial(self, state: ClusterState, changed: set[ObjectKey]) -> str:
        assert self._rendered is not None
        affected: set[SvcKey] = set()
        node_changed = pools_changed = False
        for k in changed:
            if k.kind == "Service":
                affected.add((k.namespace, k.name))
            elif k.kind == "EndpointSlice":
                old = self._unindex_slice((k.namespace, k.name))
                if old:
                    affected.add(old)
                obj = state.get("EndpointSlice", k.namespace, k.name)
                if isinstance(obj, EndpointSlice) and obj.service_name:
                    self._index_slice(obj)
                    affected.add((obj.namespace, obj.service_name))
            elif k.kind == "Node" and k.name == state.node_name:
                node_changed = True
            elif k.kind == "IPPool":
                pools_changed = True
        if node_changed and self._zone(state) != self._zone_now:
            # the node moved zones: every Service's topology choice may change
            self._zone_now = self._zone(state)
            affected |= set(self._entries_of)
        entries: dict[EntryKey, ServicePortEntry | None] = {}
        for svc_key in sorted(affected):
            entries.update(self._entries_for(state, svc_key))
        node_ips = self._node_ips(state) if node_changed else None
        for ek, entry in entries.items():
            old_e = self._entries.pop(ek, None)
            if entry is not None:
                self._entries[ek] = entry
            self._stale_udp += stale_udp_flows(old_e, entry)
        pod_cidrs = pod_cidrs_of(state.ippools) if pools_changed else None
        return render_partial(self._rendered, entries, node_ips, pod_cidrs)

    def _entries_for(self, state: ClusterState, svc_key: SvcKey) -> dict[EntryKey, ServicePortEntry | None]:
        out: dict[EntryKey, ServicePortEntry | None] = {k: None for k in self._entries_of.pop(svc_key, set())}
        svc = state.get("Service", *svc_key)
        if not isinstance(svc, Service):
            return out
        slices = [s for s in (state.get("EndpointSlice", *k) for k in self._slices_of.get(svc_key, ()))
                  if isinstance(s, EndpointSlice)]
        try:
            new = entries_for_service(svc, slices, state.node_name, self._zone_now)
        except Exception as err:  # one bad object must never stop the proxy
            log.warning("Service %s/%s skipped: %s", svc_key[0], svc_key[1], err)
            new = []
        for e in new:
            out[(e.id, e.family)] = e
        self._entries_of[svc_key] = {(e.id, e.family) for e in new}
        return out


class NoServiceProxyRole:
    """`podnet agent --services kube-proxy`: Services are left to kube-proxy, so podnet
    renders no service rules; each full sync only makes sure no `inet podnet-svc` table is
    left behind (one an earlier agent of this node rendered)."""
    name = "no-services"
    kinds: tuple[str, ...] = ()

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        if changed is not None:
            return ""
        return f"add table {SVC_TABLE}\ndelete table {SVC_TABLE}"

    def committed(self, ok: bool) -> None:
        pass

    def apply_kernel(self, state: ClusterState) -> None:
        pass
