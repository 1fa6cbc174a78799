"""A packet's path through the lab, predicted purely from calc and the lab's facts.

`predict(state, facts, src_pod, target, ...)` walks the request from the source pod hop
by hop (pod, its node, the underlay, the next node or the router and the outside world,
the destination pod), taking at each hop the decision the kernel takes there: the route
(trace/routing.py), the service proxy's DNAT (calc/services.py), each NetworkPolicy
verdict (calc/policy/predicate.py), NAT outgoing and hairpin SNAT (calc/nat.py), VXLAN. For a
connection that gets through it walks the reply back, with conntrack undoing the NAT.
Deterministic: the same state gives the same trace (golden files).
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from podnet.api.objects import Node, Pod, Service
from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import allowed, pod_by_ip
from podnet.calc.nat import nat_plan
from podnet.calc.service_paths import Path as SvcPath
from podnet.calc.service_paths import external_path, pod_cidrs_of, source_kind
from podnet.calc.services import EndpointAddr, ServicePortEntry, ServiceTable, build_table
from podnet.calc.topology import zone_of
from podnet.trace import routing as rt
from podnet.trace.facts import LabFacts, NodeFacts
from podnet.trace.model import L2, Endpoint, Headers, Hop, Path, Step, Trace
from podnet.trace.resolve import Target, TraceError, family_ip
from podnet.trace.pod_hops import Conn, Pkt, pod_label, pod_netns, pod_send
from podnet.trace.walk import Walker


# ---- the service proxy -----------------------------------------------------------------
def service_entry(state: ClusterState, target: Target, port: int, proto: str,
                  family: int, node_name: str = "") -> ServicePortEntry | None:
    """The service port as the proxy of `node_name` (where the DNAT happens) sees it: which
    endpoints are local there matters to the traffic policies."""
    svc = target.service
    if svc is None:
        return None
    table = _table(state, [svc], node_name)
    for e in table.entries.values():
        if e.family == family and e.port == port and e.protocol == proto:
            return e
    return None


def _table(state: ClusterState, services: list[Service], node_name: str) -> ServiceTable:
    """The service table as `node_name`'s proxy computes it (its zone picks hinted endpoints)."""
    node = state.get("Node", "", node_name) if node_name else None
    zone = zone_of(node if isinstance(node, Node) else None)
    return build_table(services, state.endpoint_slices, (), node_name, zone=zone)


def nodeport_entry(state: ClusterState, port: int, proto: str, family: int,
                   node_name: str = "") -> ServicePortEntry | None:
    table = _table(state, state.services, node_name)
    return next((e for _, e in sorted(table.entries.items())
                 if e.family == family and e.node_port == port and e.protocol == proto), None)


def external_ip_entry(state: ClusterState, ip: str, port: int, proto: str,
                      node_name: str = "") -> ServicePortEntry | None:
    """The service port whose external IP (spec.externalIPs, or a LoadBalancer's ingress
    IP) is `ip`:`port`."""
    family = ipaddress.ip_address(ip).version
    table = _table(state, state.services, node_name)
    return next((e for _, e in sorted(table.entries.items())
                 if e.family == family and e.port == port and e.protocol == proto
                 and (ip in e.external_ips or ip in e.lb_ips)), None)


def endpoints_of(state: ClusterState, eps: Iterable[EndpointAddr]) -> tuple[Endpoint, ...]:
    by_ip = pod_by_ip(state)
    out = []
    for ep in eps:
        p = by_ip.get(ep.ip)
        out.append(Endpoint(ep.ip, ep.port, pod_label(p) if p else "", p.node_name if p else ""))
    return tuple(out)


def default_port(target: Target, proto: str, facts: LabFacts) -> int:
    if target.service is not None:
        sp = next((p for p in target.service.ports if p.protocol == proto), None)
        if sp is not None:
            return sp.port
    if target.pod is not None:
        cp = next((p for p in target.pod.ports if p.protocol == proto), None)
        if cp is not None:
            return cp.container_port
    return next((p for p, pr in facts.echo_ports if pr == proto), 80)


def _nodeport(state: ClusterState, facts: LabFacts, src: Pod, src_ip: str, dnat_node: NodeFacts,
              dst: str, port: int, proto: str) -> tuple[ServicePortEntry, SvcPath, str] | None:
    """The NodePort entry on `dnat_node`, the path kube-proxy's rules give the connection
    there, and the source address that node sees (a pod on another node arrives NAT'd
    to its node's address when its pool has natOutgoing: a node IP is outside the pools)."""
    family = ipaddress.ip_address(dst).version
    entry = nodeport_entry(state, port, proto, family, dnat_node.name)
    if entry is None:
        return None
    seen = src_ip
    if src.node_name != dnat_node.name and nat_plan(state).masquerades(src_ip, dst):
        seen = facts.node_ip(src.node_name, family) or src_ip
    kind = source_kind(seen, pod_cidrs_of(state.ippools), (dnat_node.ip4, dnat_node.ip6 or ""))
    return entry, external_path(entry, kind), seen


def _local_note(e: ServicePortEntry, field: str, node: str) -> str:
    why = "" if not e.endpoints or e.local_endpoints else f": it has none there, node {node} drops the connection"
    return f"Service {e.namespace}/{e.name} has {field} Local: only endpoints on node {node} count{why}"


def _topology_note(state: ClusterState, svc: Service, entry: ServicePortEntry, node_name: str) -> str:
    node = state.get("Node", "", node_name)
    zone = zone_of(node if isinstance(node, Node) else None)
    everywhere = build_table([svc], state.endpoint_slices, ())  # no node, no zone: no hint fits
    where = f"node {node_name}" + (f" (zone {zone})" if zone else " (no zone label)")
    if len(entry.endpoints) < len(_ready_of(everywhere, entry)):
        return (f"Service {svc.namespace}/{svc.name} has trafficDistribution {svc.traffic_distribution}: "
                f"{where} uses only the endpoints hinted for it ({len(entry.endpoints)} of "
                f"{len(_ready_of(everywhere, entry))})")
    return (f"Service {svc.namespace}/{svc.name} has trafficDistribution {svc.traffic_distribution}, "
            f"but no ready endpoint is hinted for {where} (or some lack hints): every endpoint")


def _ready_of(table: ServiceTable, entry: ServicePortEntry) -> tuple[EndpointAddr, ...]:
    other = table.entries.get((entry.id, entry.family))
    return other.endpoints if other is not None else entry.endpoints


# ---- the whole trace ---------------------------------------------------------------------
def predict(state: ClusterState, facts: LabFacts, src: Pod, target: Target, port: int | None = None,
            proto: str = "TCP", family: int = 4, endpoint: str | None = None,
            sport: int | None = None, query: str = "") -> Trace:
    """The predicted trace of one new connection from `src` to `target`. `endpoint`
    picks the Service endpoint the path follows (default: the first); `sport` the
    source port (default: ephemeral, shown symbolically)."""
    src_ip = family_ip(src.pod_ips, family)
    if src_ip is None:
        raise TraceError(f"pod {pod_label(src)} has no IPv{family} address (its IPs: {', '.join(src.pod_ips)})")
    if ipaddress.ip_address(target.ip).version != family:
        raise TraceError(f"{target.ip} is IPv{ipaddress.ip_address(target.ip).version}, not IPv{family}")
    port = port or default_port(target, proto, facts)
    entry = service_entry(state, target, port, proto, family, src.node_name)
    eps = endpoints_of(state, entry.internal_endpoints) if entry else ()
    notes = list(target.notes)
    if target.service is not None and entry is None:
        notes.append(f"Service {target.service.namespace}/{target.service.name} has no port {port}/{proto}: "
                     f"no DNAT, the virtual IP answers nothing on it")
    node_port = False
    if entry is not None and target.service is not None and target.service.traffic_distribution:
        notes.append(_topology_note(state, target.service, entry, src.node_name))
    if entry is not None and entry.internal_local:
        notes.append(_local_note(entry, "internalTrafficPolicy", src.node_name))
    dnat_node = facts.node_by_ip(target.ip) if target.kind == "ip" else None
    ext = _nodeport(state, facts, src, src_ip, dnat_node, target.ip, port, proto) if dnat_node else None
    ext_ip = None
    if target.kind == "ip" and dnat_node is None and entry is None:
        # an external IP: the pod's own node (its default route) is where the DNAT happens
        ext_ip = external_ip_entry(state, target.ip, port, proto, src.node_name)
    if ext_ip is not None:
        kind = source_kind(src_ip, pod_cidrs_of(state.ippools), ())
        ext = ext_ip, external_path(ext_ip, kind), src_ip
        entry, eps = ext_ip, endpoints_of(state, ext[1].endpoints)
        what = "an external IP" if target.ip in entry.external_ips else "the load balancer IP"
        notes.append(f"{target.ip}:{port} is {what} of Service {entry.namespace}/{entry.name}: "
                     f"node {src.node_name}, the client's node, load-balances it")
        if entry.source_ranges and target.ip in entry.lb_ips and not any(
                ipaddress.ip_address(src_ip) in ipaddress.ip_network(r) for r in entry.source_ranges):
            ext_path = SvcPath((), False, f"{src_ip} is outside loadBalancerSourceRanges: dropped")
            ext = entry, ext_path, src_ip
            eps = ()
        notes.append(f"the connection comes from a pod: {ext[1].why}")
    elif ext is not None:
        entry, ext_path, seen = ext
        node_port, eps = True, endpoints_of(state, ext_path.endpoints)
        notes.append(f"{target.ip}:{port} is NodePort {port}/{proto} of Service {entry.namespace}/"
                     f"{entry.name}: every node listens on it")
        if entry.external_local:
            notes.append(f"the connection reaches node {dnat_node.name} from {seen}: {ext_path.why}")  # type: ignore[union-attr]
    chosen = None
    if eps:
        chosen = next((e for e in eps if e.ip == endpoint), None) if endpoint else eps[0]
        if chosen is None:
            raise TraceError(f"{endpoint} is not an endpoint of {entry.namespace}/{entry.name}"  # type: ignore[union-attr]
                             f" (endpoints: {', '.join(e.ip for e in eps)})")
    dst_ip, dst_port = (chosen.ip, chosen.port) if chosen else (target.ip, port)
    by_ip = pod_by_ip(state)
    dst_pod = by_ip.get(dst_ip)
    verdict = allowed(state, src, dst_pod or dst_ip, dst_port, proto, family, by_ip)
    conn = Conn(src, verdict=verdict)
    pkt = Pkt(family, src_ip, target.ip, sport, port, proto)
    w = Walker(state, facts, conn, entry, chosen, "request", ext[1] if ext else None,
               external_ip=ext_ip is not None)
    if target.ip == src_ip:
        hop = Hop(f"pod {pod_label(src)}", "pod", pod_label(src), pod_netns(src), None, "lo",
                  (Step("route", f"route lookup for {src_ip}: local {src_ip} dev lo table local"),
                   Step("deliver", "its own address: the packet never leaves the pod")),
                  Headers(L2("00:00:00:00:00:00", "00:00:00:00:00:00"), pkt.l3(), pkt.l4()))
        request = Path("request", (hop,), "delivered", "to itself")
    else:
        request = w.run(pod_send(src, pkt), ("node", src.node_name, rt.veth_of(src), False), pkt)
    reply = None
    if request.outcome == "delivered" and target.ip != src_ip:
        reply = _reply(state, facts, conn, entry, chosen, pkt, dst_pod, request.hops[-1])
    svc = f"{entry.namespace}/{entry.name} {entry.port}/{entry.protocol}" if entry else ""
    vs, why = ("allowed" if verdict.allowed else "denied"), verdict.reason
    if conn.policy_drop:
        vs, why = "denied", conn.policy_drop
    elif (node_port or ext_ip is not None) and not verdict.allowed and request.outcome == "delivered":
        vs, why = "allowed", "judged on the packets as they pass (the NodePort's masquerade changes the source)"
    return Trace(pod_label(src), query or target.ip, family, proto, port, tuple(notes), svc, eps, chosen,
                 vs, why, request, reply)


def _reply(state: ClusterState, facts: LabFacts, conn: Conn, entry: ServicePortEntry | None,
           chosen: Endpoint | None, req: Pkt, dst_pod: Pod | None, responder: Hop) -> Path:
    pkt = Pkt(req.family, req.dst, req.src, req.dport, req.sport, req.proto)
    w = Walker(state, facts, conn, entry, chosen, "reply")
    if dst_pod is not None:
        return w.run(pod_send(dst_pod, pkt), ("node", dst_pod.node_name, rt.veth_of(dst_pod), False), pkt)
    if responder.kind == "node":
        hop, loc = w.node_origin(responder.name, pkt)
        return w.run(hop, loc, pkt)
    d = rt.outside_decision(facts, pkt.dst)
    steps = [Step("route", f"route lookup for {pkt.dst}: {d.route}",
                  d.data(pkt.src, pkt.dst))]
    if d.to == "none":
        steps.append(Step("drop", f"the answer to {pkt.dst} has nowhere to go: it never comes back "
                                  f"(this is what NAT outgoing is for)"))
        hop = Hop("outside world", "outside", "", facts.outside_netns, None, None, tuple(steps), None)
        return Path("reply", (hop,), "unreachable", f"the outside world has no route to {pkt.dst}")
    h = Headers(L2(facts.mac(facts.outside_netns, "eth0", "outside world"),
                   facts.mac(facts.router_netns, rt.ROUTER_OUT_DEV, "router")), pkt.l3(), pkt.l4())
    hop = Hop("outside world", "outside", "", facts.outside_netns, None, "eth0", tuple(steps), h)
    return w.run(hop, ("router", "", rt.ROUTER_OUT_DEV, False), pkt)
