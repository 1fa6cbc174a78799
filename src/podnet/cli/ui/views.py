"""What the web view's JSON endpoints answer, built purely from objects (no I/O).

`topology` is the picture: nodes with their pods (IPv4/IPv6) and IPAM blocks, Services
with their virtual IPs and the endpoints behind them, IP pools, and the lab around the
cluster (underlay, router, outside world). `explain` says why one cell of a reachability
matrix is what it is, from the same predicate `podnet analyze` uses.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterable

from podnet.api.objects import EndpointSlice, IPPool, Node, Pod, Resource, Service
from podnet.calc.model import ClusterState
from podnet.calc.policy.describe import describe_pod
from podnet.calc.policy.predicate import SideVerdict, allowed
from podnet.calc.policy.table import pod_label

KINDS = ("Namespace", "Node", "Pod", "Service", "EndpointSlice", "NetworkPolicy", "ClusterNetworkPolicy", "IPPool",
         "IPAMBlock")
Lister = Callable[[str], Iterable[Resource]]


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def pod_view(p: Pod) -> dict[str, Any]:
    ips = p.pod_ips
    return {"namespace": p.namespace, "name": p.name, "node": p.node_name,
            "ipv4": [a for a in ips if _family(a) == 4], "ipv6": [a for a in ips if _family(a) == 6],
            "phase": p.phase, "ready": p.ready, "terminating": p.deletion_timestamp is not None,
            "hostNetwork": p.host_network, "labels": dict(p.labels)}


def _block_view(b: Resource) -> dict[str, Any]:
    spec = b.spec
    aff = str(spec.get("affinity") or "")
    cidr = str(spec.get("cidr", ""))
    try:
        size = ipaddress.ip_network(cidr).num_addresses
    except ValueError:
        size = 0
    return {"cidr": cidr, "pool": str(spec.get("pool") or ""),
            "node": aff[5:] if aff.startswith("host:") else "",
            "used": len(spec.get("allocations") or {}), "size": size}


def _service_view(s: Service, slices: list[EndpointSlice]) -> dict[str, Any]:
    endpoints: list[dict[str, Any]] = []
    for sl in slices:
        for e in sl.endpoints:
            for a in e.addresses:
                endpoints.append({"address": a, "ready": e.ready, "terminating": e.terminating,
                                  "node": e.node_name,
                                  "pod": f"{e.target_ref[1]}/{e.target_ref[2]}" if e.target_ref else ""})
    endpoints.sort(key=lambda e: (_family(str(e["address"])), str(e["address"])))
    ports = [{"name": p.name, "port": p.port, "protocol": p.protocol, "targetPort": p.effective_target,
              "nodePort": p.node_port} for p in s.ports]
    return {"namespace": s.namespace, "name": s.name, "type": s.type, "clusterIPs": s.cluster_ips,
            "externalIPs": s.external_ips, "loadBalancerIPs": s.load_balancer_ips, "ports": ports,
            "selector": s.spec.get("selector") or None,
            "endpoints": endpoints}


def topology(objects: Lister, lab: dict[str, Any] | None, revision: int) -> dict[str, Any]:
    """The whole picture as JSON. `objects(kind)` lists the objects of a kind."""
    pods = sorted((p for p in objects("Pod") if isinstance(p, Pod)), key=lambda p: (p.namespace, p.name))
    blocks = [_block_view(b) for b in objects("IPAMBlock")]
    blocks.sort(key=lambda b: (_family(b["cidr"]), b["cidr"]))
    nodes = []
    node_objs = sorted((n for n in objects("Node") if isinstance(n, Node)), key=lambda n: n.name)
    for n in node_objs:
        nodes.append({"name": n.name, "ips": n.internal_ips,
                      "blocks": [b for b in blocks if b["node"] == n.name],
                      "pods": [pod_view(p) for p in pods if p.node_name == n.name]})
    known = {n.name for n in node_objs}
    slices: dict[tuple[str, str], list[EndpointSlice]] = {}
    for sl in objects("EndpointSlice"):
        if isinstance(sl, EndpointSlice):
            slices.setdefault((sl.namespace, sl.service_name), []).append(sl)
    services = [_service_view(s, slices.get((s.namespace, s.name), []))
                for s in sorted((s for s in objects("Service") if isinstance(s, Service)),
                                key=lambda s: (s.namespace, s.name))]
    pools = [{"name": p.name, "cidr": p.cidr, "family": p.family, "blockSize": p.block_size,
              "natOutgoing": p.nat_outgoing, "disabled": p.disabled, "allowedUses": list(p.allowed_uses)}
             for p in sorted((p for p in objects("IPPool") if isinstance(p, IPPool)), key=lambda p: p.name)]
    return {"revision": revision, "lab": lab, "nodes": nodes,
            "unscheduled": [pod_view(p) for p in pods if p.node_name not in known],
            "services": services, "pools": pools,
            "unaffinedBlocks": [b for b in blocks if b["node"] not in known],
            "policies": sorted(f"{o.namespace}/{o.name}" for o in objects("NetworkPolicy"))}


def lab_view(spec: Any) -> dict[str, Any]:
    """The lab around the cluster, from a podnet.lab.topology.LabSpec."""
    return {"name": spec.name, "encap": spec.encap, "dualStack": spec.dual_stack,
            "datastore": spec.datastore,
            "underlay": {"ipv4": spec.underlay4, "ipv6": spec.underlay6 if spec.dual_stack else None,
                         "netns": spec.underlay_netns},
            "router": {"ipv4": [spec.router_ul4, spec.router_out4],
                       "ipv6": [spec.router_ul6, spec.router_out6] if spec.dual_stack else [],
                       "netns": spec.router_netns},
            "outside": {"ipv4": spec.outside4, "ipv6": spec.outside6 if spec.dual_stack else None,
                        "echo": [spec.echo4] + ([spec.echo6] if spec.dual_stack else []),
                        "netns": spec.outside_netns},
            "nodes": [{"name": n.name, "netns": n.netns, "ips": n.ips} for n in spec.nodes]}


def _side(v: SideVerdict) -> dict[str, Any]:
    return {"direction": v.direction, "isolated": v.isolated, "allowed": v.allowed,
            "policies": list(v.policies), "rule": v.rule.name if v.rule else None, "reason": v.reason}


def explain(state: ClusterState, src: str, dst: str, port: int, protocol: str, family: int) -> dict[str, Any]:
    """Why `src` (ns/pod) may or may not connect to `dst` (ns/pod or an address)."""
    by_label = {pod_label(p): p for p in state.pods}
    spod = by_label.get(src)
    if spod is None:
        raise KeyError(f"no pod {src}")
    target: Pod | str = by_label.get(dst) or dst
    if isinstance(target, str):
        try:
            ipaddress.ip_address(target)
        except ValueError:
            raise KeyError(f"no pod or address {dst}") from None
    v = allowed(state, spod, target, port, protocol, family)
    out: dict[str, Any] = {"from": src, "to": dst, "port": port, "protocol": protocol, "family": family,
                           "allowed": v.allowed, "reason": v.reason,
                           "egress": _side(v.egress), "ingress": _side(v.ingress),
                           "sourcePolicies": describe_pod(state, spod)}
    if isinstance(target, Pod):
        out["targetPolicies"] = describe_pod(state, target)
    return out
