"""The columns `podnet get` and the API server's Tables print, per kind (kubectl's). Pure,
except that pools (and nodes that publish no blocks) ask the IPAM module for usage when
a store is given.

A column function takes (obj, ctx) and returns the row cells; ctx carries `now` (for AGE)
and the store (for columns computed from other objects). `cells` is a whole row (wide
columns included), `headers_of` the headers; the CLI lays them out as text (cli/output.py),
the API server as a meta.k8s.io Table (table.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from podnet.api.defaults import AGENT_HEARTBEAT_EVERY
from podnet.api.objects import (Deployment, EndpointSlice, IPPool, NetworkPolicy, Node, Pod,
                                Resource, Service, node_report)
from podnet.ipam.usage import block_usage, pool_usage

NONE = "<none>"
STALE_AFTER = 3 * AGENT_HEARTBEAT_EVERY  # seconds without a heartbeat before a node's agent counts as gone


@dataclass
class Ctx:
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    store: Any = None
    _cache: dict[str, Any] = field(default_factory=dict)



# ---- ages -----------------------------------------------------------------------------
def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def age(obj: Resource, ctx: Ctx) -> str:
    t = parse_time(str(obj.metadata.get("creationTimestamp", "")))
    return human_duration((ctx.now - t).total_seconds()) if t else NONE


Columns = Callable[[Resource, Ctx], list[str]]


@dataclass(frozen=True)
class KindTable:
    headers: tuple[str, ...]
    row: Columns
    wide_headers: tuple[str, ...] = ()
    wide_row: Columns | None = None


# ---- per kind -------------------------------------------------------------------------
def _pod(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, Pod)
    statuses = o.status.get("containerStatuses") or []
    total = len(o.containers)
    ready = sum(1 for c in statuses if c.get("ready")) if statuses else (total if o.ready else 0)
    status = str(o.status.get("reason") or o.phase)
    for c in statuses:  # kubectl shows a container's waiting/terminated reason instead
        state = c.get("state") or {}
        why = (state.get("waiting") or {}).get("reason") or (state.get("terminated") or {}).get("reason")
        if why:
            status = str(why)
    if o.deletion_timestamp:
        status = "Terminating"
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return [o.name, f"{ready}/{total}", status, str(restarts), age(o, ctx)]


def _pod_wide(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, Pod)
    return [o.pod_ips[0] if o.pod_ips else NONE, o.node_name or NONE]


def service_ports(svc: Service) -> str:
    out = []
    for p in svc.ports:
        out.append(f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}")
    return ",".join(out) or NONE


def _service(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, Service)
    # kubectl shows the primary cluster IP only (spec.clusterIP), also for dual stack
    cip = "None" if o.headless else (o.cluster_ips[0] if o.cluster_ips else NONE)
    return [o.name, o.type, cip, external_ip_column(o) or NONE, service_ports(o), age(o, ctx)]


def external_ip_column(o: Service) -> str:
    """kubectl's EXTERNAL-IP (getServiceExternalIP): the externalIPs; for a LoadBalancer
    its ingress addresses first, `<pending>` while it has none; an ExternalName's name."""
    if o.type == "ExternalName":
        return o.external_name
    ext = o.external_ips
    if o.type == "LoadBalancer":
        lb = [str(i.get("ip") or i.get("hostname") or "")
              for i in ((o.status.get("loadBalancer") or {}).get("ingress") or []) if isinstance(i, dict)]
        lb = [x for x in lb if x]
        if lb or ext:
            return ",".join(lb + ext)
        return "<pending>"
    return ",".join(ext)


def _service_wide(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, Service)
    return [str(o.selector) if o.has_selector else NONE]


def _deployment(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, Deployment)
    st = o.status
    return [o.name, f"{int(st.get('readyReplicas') or 0)}/{o.replicas}",
            str(int(st.get("updatedReplicas") or 0)), str(int(st.get("availableReplicas") or 0)),
            age(o, ctx)]


def _deployment_wide(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, Deployment)
    cs = (o.template.get("spec") or {}).get("containers") or []
    return [",".join(str(c.get("name", "")) for c in cs) or NONE,
            ",".join(str(c.get("image", "")) for c in cs) or NONE, _selector_text(o.selector)]


def _selector_text(sel: Any) -> str:
    s = str(sel)
    return NONE if s in ("<all>", "<none>") else s


def _netpol(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, NetworkPolicy)
    return [o.name, _selector_text(o.pod_selector), age(o, ctx)]


def _cnp(o: Resource, ctx: Ctx) -> list[str]:
    spec = o.spec
    return [o.name, str(spec.get("tier", "")), str(spec.get("priority", "")), age(o, ctx)]


def _endpointslice(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, EndpointSlice)
    ports = ",".join(str(p.port) for p in o.ports) or "<unset>"
    addrs = [a for e in o.endpoints for a in e.addresses]
    eps = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o.name, o.address_type, ports, eps or "<unset>", age(o, ctx)]


def _endpoints(o: Resource, ctx: Ctx) -> list[str]:
    """core/v1 Endpoints (derived from EndpointSlices): ready `ip:port` pairs, as kubectl."""
    pairs = [f"{a.get('ip')}:{p.get('port')}" for sub in o.raw.get("subsets") or []
             for a in sub.get("addresses") or [] for p in (sub.get("ports") or [{"port": ""}])]
    text = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [o.name, text or NONE, age(o, ctx)]


def _namespace(o: Resource, ctx: Ctx) -> list[str]:
    status = "Terminating" if o.deletion_timestamp else str(o.status.get("phase") or "Active")
    return [o.name, status, age(o, ctx)]


def heartbeat_age(o: Resource, now: datetime) -> float | None:
    """Seconds since the node's agent last wrote its status, or None if it never did."""
    beat = node_report(o, "agent").get("heartbeat")
    try:
        return (now - datetime.fromisoformat(str(beat).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None


def node_ready(o: Resource, now: datetime | None = None) -> str:
    """Ready as the agent reported it; Unknown once its heartbeat is stale, as Kubernetes
    shows a node whose kubelet stopped posting status."""
    age_s = heartbeat_age(o, now or datetime.now(timezone.utc))
    if age_s is not None and age_s > STALE_AFTER:
        return "Unknown"
    for c in o.status.get("conditions") or []:
        if c.get("type") == "Ready":
            return {"True": "Ready", "False": "NotReady"}.get(str(c.get("status")), "Unknown")
    return "Unknown"


def _node(o: Resource, ctx: Ctx) -> list[str]:
    roles = sorted(k.split("/", 1)[1] for k in o.labels if k.startswith("node-role.kubernetes.io/"))
    info = o.status.get("nodeInfo") or {}
    version = str(info.get("kubeletVersion") or info.get("podnetVersion")
                  or node_report(o, "podnet").get("version") or NONE)
    return [o.name, node_ready(o, ctx.now), ",".join(roles) or NONE, age(o, ctx), version]


def node_agent(o: Resource, now: datetime | None = None) -> str:
    """The agent's health as it reports it (`status.agent.health`, or its annotation:
    `node_report`), or `stale (<age>)` when its heartbeat stopped: an agent that died
    cannot say so itself."""
    agent = node_report(o, "agent")
    if not agent.get("health"):
        return NONE
    age_s = heartbeat_age(o, now or datetime.now(timezone.utc))
    if age_s is not None and age_s > STALE_AFTER:
        return f"stale({human_duration(age_s)})"
    return str(agent["health"])


def _node_wide(o: Resource, ctx: Ctx) -> list[str]:
    """INTERNAL-IP, then podnet's: the node's blocks (as its agent publishes them in
    status.podnet.blocks or its annotation, else from IPAM block affinities) and the agent's health."""
    assert isinstance(o, Node)
    blocks = NONE
    published = o.podnet_report.get("blocks")
    if isinstance(published, list):  # what the node's agent reports it routes
        blocks = ",".join(str(b) for b in published) or NONE
    elif ctx.store is not None:
        if "blocks" not in ctx._cache:
            try:
                ctx._cache["blocks"] = block_usage(ctx.store)
            except Exception:  # a broken IPAM state must not break `get nodes`
                ctx._cache["blocks"] = []
        mine = [b.cidr for b in ctx._cache["blocks"] if b.node == o.name]
        blocks = ",".join(mine) or NONE
    return [",".join(o.internal_ips) or NONE, blocks, node_agent(o, ctx.now), node_syncs(o)]


def node_syncs(o: Resource) -> str:
    """The agent's sync counts as it publishes them (status.agent.sync):
    `<full>f+<partial>p,<failed>err,<last duration>`."""
    return compact_syncs(node_report(o, "agent").get("sync"))


def _ippool(o: Resource, ctx: Ctx) -> list[str]:
    assert isinstance(o, IPPool)
    try:
        bs = str(o.block_size)
    except ValueError:
        bs = NONE
    row = [o.name, o.cidr or NONE, bs, str(o.nat_outgoing).lower(), str(o.disabled).lower()]
    if ctx.store is not None:
        try:
            used, free = (str(n) for n in pool_usage(ctx.store, o.name))
        except Exception:
            used, free = "?", "?"
        row += [used, free]
    row.append(age(o, ctx))
    return row


def ippool_headers(ctx: Ctx) -> tuple[str, ...]:
    usage = ctx.store is not None
    return ("NAME", "CIDR", "BLOCKSIZE", "NAT", "DISABLED") + (("USED", "FREE") if usage else ()) + ("AGE",)


def _bgppeer(o: Resource, ctx: Ctx) -> list[str]:
    s = o.spec
    peer = str(s.get("peerIP") or "") or f"selector: {s.get('peerSelector')}"
    nodes = str(s.get("node") or s.get("nodeSelector") or "all()")
    return [o.name, peer, str(s.get("asNumber") or NONE), nodes, age(o, ctx)]


TABLES: dict[str, KindTable] = {
    "Pod": KindTable(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), _pod, ("IP", "NODE"), _pod_wide),
    "Service": KindTable(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), _service,
                         ("SELECTOR",), _service_wide),
    "Deployment": KindTable(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), _deployment,
                            ("CONTAINERS", "IMAGES", "SELECTOR"), _deployment_wide),
    "NetworkPolicy": KindTable(("NAME", "POD-SELECTOR", "AGE"), _netpol),
    # upstream's printer columns (kubebuilder:printcolumn on ClusterNetworkPolicy)
    "ClusterNetworkPolicy": KindTable(("NAME", "TIER", "PRIORITY", "AGE"), _cnp),
    "EndpointSlice": KindTable(("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"), _endpointslice),
    "Namespace": KindTable(("NAME", "STATUS", "AGE"), _namespace),
    "Endpoints": KindTable(("NAME", "ENDPOINTS", "AGE"), _endpoints),
    "Node": KindTable(("NAME", "STATUS", "ROLES", "AGE", "VERSION"), _node,
                      ("INTERNAL-IP", "BLOCKS", "AGENT", "SYNCS"), _node_wide),
    "IPPool": KindTable(("NAME", "CIDR", "BLOCKSIZE", "NAT", "DISABLED", "AGE"), _ippool),
    "BGPPeer": KindTable(("NAME", "PEER", "ASN", "NODES", "AGE"), _bgppeer),
}


def compact_syncs(sync: object) -> str:
    """`status.agent.sync` in a few characters for `get nodes -o wide`:
    `<full>f+<partial>p,<failed>err,<last duration>`, e.g. `3f+41p,0err,2.1ms` (one word,
    so the table stays splittable)."""
    if not isinstance(sync, dict):
        return "<none>"
    try:
        secs = float(sync.get("lastSeconds") or 0.0)
        last = f"{secs * 1000:.1f}ms" if secs < 1 else f"{secs:.2f}s"
        return f"{int(sync.get('full') or 0)}f+{int(sync.get('partial') or 0)}p," \
               f"{int(sync.get('failed') or 0)}err,{last}"
    except (TypeError, ValueError):
        return "<none>"



def table_of(kind: str, ctx: Ctx) -> KindTable:
    t = TABLES.get(kind) or KindTable(("NAME", "AGE"), lambda o, c: [o.name, age(o, c)])
    if kind == "IPPool":
        t = KindTable(ippool_headers(ctx), t.row)
    return t


def headers_of(kind: str, ctx: Ctx | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(headers, wide headers)."""
    t = table_of(kind, ctx or Ctx())
    return t.headers, t.wide_headers


def cells(kind: str, obj: Resource, ctx: Ctx, wide: bool = True) -> list[str]:
    """One object's row; an object another tool wrote badly still gets its line."""
    t = table_of(kind, ctx)
    width = len(t.headers) + (len(t.wide_headers) if wide else 0)
    try:
        return t.row(obj, ctx) + (t.wide_row(obj, ctx) if wide and t.wide_row else [])
    except (TypeError, ValueError, AttributeError):
        return [obj.name] + ["<invalid>"] * (width - 1)
