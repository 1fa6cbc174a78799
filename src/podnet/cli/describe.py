"""`podnet describe`: a readable `Key: value` view of one object.

Every object gets the common header (Name, Namespace, Labels, Annotations, created), then
podnet's own section for its kind, then any section other parts registered:
`DESCRIBERS[kind] = fn(store, obj) -> list[str]` (lines, already indented as they like).
"""
from __future__ import annotations

import time
from typing import Any, Callable

from podnet.api.objects import (ClusterNetworkPolicy, Deployment, containers_of, EndpointSlice, IPPool, NetworkPolicy, Node, Pod,
                                PolicyRule, Resource, Service, node_report)
from podnet.cli.output import NONE, compact_syncs, node_agent, node_ready

Describer = Callable[[Any, Resource], list[str]]


class DescriberRegistry(dict[str, Describer]):
    """kind -> section. Several parts may add a section for the same kind: assigning (or
    `setdefault`) a second describer chains it after the first instead of replacing it,
    and registering the same function twice is a no-op."""

    def __init__(self) -> None:
        super().__init__()
        self._fns: dict[str, list[Describer]] = {}

    def __setitem__(self, kind: str, fn: Describer) -> None:
        fns = self._fns.setdefault(kind, [])
        if fn not in fns:
            fns.append(fn)
        super().__setitem__(kind, fns[0] if len(fns) == 1 else self._chained(kind))

    def setdefault(self, kind: str, fn: Describer) -> Describer:
        self[kind] = fn
        return self[kind]

    def pop(self, kind: str, *default: Any) -> Any:
        self._fns.pop(kind, None)
        return super().pop(kind, *default)

    def _chained(self, kind: str) -> Describer:
        def run(store: Any, obj: Resource) -> list[str]:
            return [line for fn in list(self._fns.get(kind, [])) for line in fn(store, obj)]
        return run


# Sections added by other parts of podnet (agent, ipam, dns ...), shown after ours.
DESCRIBERS = DescriberRegistry()
_SKIP_ANNOTATIONS = ("podnet.io/last-applied",)


def kv(key: str, value: Any, width: int = 18) -> str:
    """`Key:` padded to `width`; an empty key continues the previous key's values."""
    return f"{key + ':' if key else '':<{width}}{value}"


def _map_lines(key: str, m: dict[str, str], width: int = 18) -> list[str]:
    items = [f"{k}={v}" for k, v in sorted(m.items())]
    if not items:
        return [kv(key, NONE, width)]
    return [kv(key, items[0], width)] + [kv("", i, width) for i in items[1:]]


def describe(store: Any, obj: Resource) -> str:
    lines = [kv("Name", obj.name)]
    if obj.namespace:
        lines.append(kv("Namespace", obj.namespace))
    lines += _map_lines("Labels", obj.labels)
    lines += _map_lines("Annotations", {k: v for k, v in obj.annotations.items()
                                        if k not in _SKIP_ANNOTATIONS})
    lines.append(kv("Created", obj.metadata.get("creationTimestamp") or NONE))
    base = _BASE.get(obj.kind)
    if base:
        try:
            lines += base(store, obj)
        except (TypeError, ValueError, AttributeError) as e:
            lines.append(kv("Error", f"this {obj.kind} has malformed fields: {e}"))
    extra = DESCRIBERS.get(obj.kind)
    if extra:
        try:
            lines += extra(store, obj)
        except Exception as e:  # another part's bug must not hide the object
            lines.append(kv("Error", f"{obj.kind} section failed: {e}"))
    return "\n".join(lines) + "\n"


def _pod(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, Pod)
    lines = [kv("Node", o.node_name or NONE), kv("Status", o.phase),
             kv("IP", o.pod_ips[0] if o.pod_ips else NONE)]
    if o.pod_ips:
        lines.append("IPs:")
        lines += [f"  IP:  {ip}" for ip in o.pod_ips]
    if o.host_network:
        lines.append(kv("Host Network", "true"))
    lines.append(kv("DNS Policy", o.dns_policy))
    if o.hostname or o.subdomain:
        lines.append(kv("Hostname", ".".join(x for x in (o.hostname, o.subdomain) if x)))
    return lines + _container_lines(o.containers)


def _pod_policies(store: Any, o: Resource) -> list[str]:
    """Which NetworkPolicies and ClusterNetworkPolicies select the pod and what they let in
    and out (calc decides)."""
    from podnet.calc.model import ClusterState
    from podnet.calc.policy.describe import describe_cluster, describe_pod
    assert isinstance(o, Pod)
    objs = [*store.list("NetworkPolicy", o.namespace).items, *store.list("Namespace").items,
            *store.list("Pod").items, *store.list("ClusterNetworkPolicy").items]
    st = ClusterState.from_objects(objs)
    return (["NetworkPolicy:"] + ["  " + line for line in describe_pod(st, o)]
            + ["ClusterNetworkPolicy:"] + ["  " + line for line in describe_cluster(st, o)])


def _service(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, Service)
    lines = [kv("Selector", str(o.selector) if o.has_selector else NONE), kv("Type", o.type)]
    if o.type == "ExternalName":
        lines.append(kv("External Name", o.external_name))
    else:
        lines.append(kv("IP Family Policy", o.ip_family_policy))
        lines.append(kv("IP Families", ",".join(o.ip_families) or NONE))
        lines.append(kv("IP", "None" if o.headless else (o.cluster_ips[0] if o.cluster_ips else NONE)))
        lines.append(kv("IPs", "None" if o.headless else (",".join(o.cluster_ips) or NONE)))
        if o.external_ips:
            lines.append(kv("External IPs", ",".join(o.external_ips)))
        if o.type == "LoadBalancer":
            lines.append(kv("LoadBalancer Ingress", ", ".join(o.load_balancer_ips) or NONE))
    endpoints = _endpoints_of(store, o)
    for p in o.ports:
        label = p.name or "<unset>"
        lines.append(kv("Port", f"{label}  {p.port}/{p.protocol}"))
        lines.append(kv("TargetPort", f"{p.effective_target}/{p.protocol}"))
        if p.node_port:
            lines.append(kv("NodePort", f"{label}  {p.node_port}/{p.protocol}"))
        lines.append(kv("Endpoints", ",".join(endpoints.get(p.name, [])) or NONE))
    if not o.ports:
        lines.append(kv("Port", NONE))
    lines.append(kv("Session Affinity", o.session_affinity))
    if o.type in ("NodePort", "LoadBalancer") or o.external_ips:
        lines.append(kv("External Traffic Policy", o.external_traffic_policy))
    if o.spec.get("healthCheckNodePort"):
        lines.append(kv("HealthCheck NodePort", str(o.spec["healthCheckNodePort"])))
    if o.session_affinity == "ClientIP":
        lines.append(kv("Affinity Timeout", f"{o.session_affinity_timeout}s"))
    return lines


def _endpoints_of(store: Any, svc: Service) -> dict[str, list[str]]:
    """Port name -> ready `ip:port` endpoints, from the Service's EndpointSlices."""
    out: dict[str, list[str]] = {}
    if store is None:
        return out
    for s in store.list("EndpointSlice", svc.namespace).items:
        if not isinstance(s, EndpointSlice) or s.service_name != svc.name:
            continue
        for p in s.ports:
            for e in s.endpoints:
                if e.ready:
                    for a in e.addresses:
                        out.setdefault(p.name, []).append(f"[{a}]:{p.port}" if ":" in a else f"{a}:{p.port}")
    return out


def _deployment(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, Deployment)
    st = o.status
    return [kv("Selector", str(o.selector)),
            kv("Replicas", f"{o.replicas} desired | {int(st.get('updatedReplicas') or 0)} updated | "
                           f"{int(st.get('replicas') or 0)} total | {int(st.get('availableReplicas') or 0)}"
                           f" available | {int(st.get('unavailableReplicas') or 0)} unavailable"),
            "Pod Template:"] + ["  " + line for line in _template_lines(o.template)]


def _template_lines(template: dict[str, Any]) -> list[str]:
    labels = (template.get("metadata") or {}).get("labels") or {}
    lines = _map_lines("Labels", {str(k): str(v) for k, v in labels.items()}, 16)
    return lines + _container_lines(containers_of(template.get("spec") or {}))


def _container_lines(containers: Any) -> list[str]:
    lines = ["Containers:"]
    for c in containers:
        lines.append(f"  {c.name}:")
        lines.append("    " + kv("Image", c.image, 10))
        ports = ", ".join(f"{p.container_port}/{p.protocol}" + (f" ({p.name})" if p.name else "")
                          for p in c.ports)
        lines.append("    " + kv("Ports", ports or NONE, 10))
    return lines


def _rule_lines(rule: PolicyRule, peer_word: str) -> list[str]:
    out = []
    if rule.ports is None:
        out.append(f"    To Port: <any> (traffic allowed to all ports)")
    else:
        for p in rule.ports:
            port = "<any>" if p.port is None else str(p.port)
            rng = f"-{p.end_port}" if p.end_port else ""
            out.append(f"    To Port: {port}{rng}/{p.protocol}")
    if rule.peers is None:
        out.append(f"    {peer_word}: <any> (traffic not restricted by source/destination)")
        return out
    for peer in rule.peers:
        if peer.ip_block:
            exc = f" except {', '.join(peer.ip_block.except_)}" if peer.ip_block.except_ else ""
            out.append(f"    {peer_word}: IPBlock: {peer.ip_block.cidr}{exc}")
            continue
        parts = []
        if peer.namespace_selector is not None:
            parts.append(f"NamespaceSelector: {peer.namespace_selector}")
        if peer.pod_selector is not None:
            parts.append(f"PodSelector: {peer.pod_selector}")
        out.append(f"    {peer_word}: " + " and ".join(parts))
    return out


def _netpol(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, NetworkPolicy)
    sel = o.pod_selector
    lines = ["Spec:", f"  PodSelector:     {sel if not sel.is_everything else '<none> (all pods in the namespace)'}"]
    for direction, rules, word in (("Ingress", o.ingress, "From"), ("Egress", o.egress, "To")):
        if direction not in o.policy_types:
            lines.append(f"  Not affecting {direction} traffic")
            continue
        lines.append(f"  Allowing {direction} traffic:")
        if not rules:
            lines.append(f"    <none> (selected pods are isolated for {direction.lower()} connectivity)")
        for i, r in enumerate(rules):
            if i:
                lines.append("    ----------")
            lines += _rule_lines(r, word)
    lines.append(kv("  Policy Types", ", ".join(o.policy_types)))
    return lines + _netpol_flows(o)


def _cnp(store: Any, o: Resource) -> list[str]:
    from podnet.calc.policy.describe import describe_cluster_policy
    assert isinstance(o, ClusterNetworkPolicy)
    return describe_cluster_policy(o)


def _netpol_flows(o: NetworkPolicy) -> list[str]:
    """Recent flows the policy allowed and denied, from every node's flow recorder (issue
    18 §2); nothing when no recorder answers (not root, no lab, flows off)."""
    from podnet.agent import flow_query
    from podnet.agent.flow_server import query
    from podnet.cli.flows import node_namespaces
    try:
        nodes = node_namespaces(None)
    except Exception:  # noqa: BLE001 - no lab state: no flows to tell
        return []
    recs: list[dict[str, Any]] = []
    answered = 0
    for _, ns in nodes:
        try:
            _, it = query(ns, timeout=2.0)
            recs += list(it)
            answered += 1
        except OSError:
            continue
    if not answered:
        return []
    c = flow_query.policy_counts(recs, o.namespace, o.name)
    since = min((r["time"] for r in recs), default=None)
    when = time.strftime("%H:%M:%S", time.localtime(since)) if since else "-"
    lines = [f"Recent flows (since {when}, {answered} node(s)):",
             kv("  Allowed", c.get("allowed", 0)), kv("  Denied", c.get("denied", 0))]
    lines += [kv(f"  {k.capitalize()}", v) for k, v in sorted(c.items()) if " rule " in k]
    return lines


def _ippool(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, IPPool)
    return [kv("CIDR", o.cidr), kv("Block Size", o.block_size), kv("NAT Outgoing", str(o.nat_outgoing).lower()),
            kv("Disabled", str(o.disabled).lower()), kv("Node Selector", str(o.node_selector))]


def _node(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, Node)
    return [kv("Status", node_ready(o)), kv("Internal IPs", ",".join(o.internal_ips) or NONE),
            kv("Pod CIDRs", ",".join(o.spec.get("podCIDRs") or []) or NONE), kv("Agent", node_agent(o))] \
        + _node_syncs(o)


def _node_syncs(o: Resource) -> list[str]:
    """The agent's sync counts (status.agent.sync): the totals, then one line per role."""
    sync = node_report(o, "agent").get("sync")
    if not isinstance(sync, dict):
        return []
    lines = [kv("Syncs", compact_syncs(sync))]
    roles = sync.get("roles")
    for name, r in sorted(roles.items()) if isinstance(roles, dict) else ():
        if isinstance(r, dict):
            lines.append(f"  {name:<10} {compact_syncs(r)}")
    return lines


def _endpointslice(store: Any, o: Resource) -> list[str]:
    assert isinstance(o, EndpointSlice)
    lines = [kv("AddressType", o.address_type), "Ports:"]
    lines += [f"  {p.name or '<unset>'}  {p.port}/{p.protocol}" for p in o.ports] or ["  <unset>"]
    lines.append("Endpoints:")
    for e in o.endpoints:
        lines.append(f"  - Addresses:  {','.join(e.addresses)}")
        lines.append(f"    Conditions: Ready: {str(e.ready).lower()}  Serving: {str(e.serving).lower()}"
                     f"  Terminating: {str(e.terminating).lower()}")
        if e.node_name:
            lines.append(f"    NodeName:   {e.node_name}")
        if e.target_ref:
            lines.append(f"    TargetRef:  {e.target_ref[0]}/{e.target_ref[2]}")
    return lines


def _namespace(store: Any, o: Resource) -> list[str]:
    return [kv("Status", o.status.get("phase") or "Active")]


_BASE: dict[str, Describer] = {
    "Pod": lambda store, o: _pod(store, o) + _pod_policies(store, o), "Service": _service, "Deployment": _deployment, "NetworkPolicy": _netpol,
    "ClusterNetworkPolicy": _cnp,
    "IPPool": _ippool, "Node": _node, "EndpointSlice": _endpointslice, "Namespace": _namespace,
}
