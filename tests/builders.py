"""Builders for the objects tests need (Namespaces, Services, EndpointSlices, Pods, Nodes,
IPPools), each with a small mutator of the dict (`make_service("ns1", "web", lambda d: ...)`),
on the one address plan of the tests below. Every test that builds a Pod or a Service
takes it from here."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from podnet.api.objects import EndpointSlice, IPPool, Node, Pod, Resource, Service, from_dict

Mut = Callable[[dict[str, Any]], None] | None

# The address plan (as the lab's defaults): Service VIPs, pod IPs (the IP pools), node IPs.
SERVICE_CIDRS = ("10.96.0.0/12", "fd00:10:96::/112")
POD_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")
NODE_CIDRS = ("198.18.0.0/24", "fd00:198:18::/64")


def make_namespace(name: str) -> Resource:
    return from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def make_service(ns: str, name: str, mutate: Mut = None, *, ip: str = "10.96.0.10",
                 ports: Iterable[dict[str, Any]] = ({"name": "http", "port": 80, "targetPort": 8080},),
                 selector: dict[str, str] | None = None) -> Service:
    """ip "" leaves clusterIP(s) out (for admission to allocate); "None" is headless."""
    d: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                         "metadata": {"namespace": ns, "name": name},
                         "spec": {"ports": [dict(p) for p in ports],
                                  "selector": selector if selector is not None else {"app": name}}}
    if ip:
        d["spec"].update(clusterIP=ip, clusterIPs=[ip])
    if mutate:
        mutate(d)
    obj = from_dict(d)
    assert isinstance(obj, Service)
    return obj


def endpoint(ip: str, ready: bool = True, serving: bool | None = None, terminating: bool = False,
             node: str = "node-1", pod: str = "") -> dict[str, Any]:
    cond: dict[str, Any] = {"ready": ready, "terminating": terminating}
    if serving is not None:
        cond["serving"] = serving
    d: dict[str, Any] = {"addresses": [ip], "conditions": cond, "nodeName": node}
    if pod:
        d["targetRef"] = {"kind": "Pod", "namespace": "default", "name": pod}
    return d


def make_slice(ns: str, service: str, eps: Iterable[dict[str, Any]], mutate: Mut = None, *,
               name: str = "", family: str = "IPv4",
               ports: Iterable[dict[str, Any]] = ({"name": "http", "port": 8080, "protocol": "TCP"},)
               ) -> EndpointSlice:
    d: dict[str, Any] = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"namespace": ns, "name": name or f"{service}-{family.lower()}",
                                      "labels": {"kubernetes.io/service-name": service}},
                         "addressType": family, "endpoints": list(eps), "ports": [dict(p) for p in ports]}
    if mutate:
        mutate(d)
    obj = from_dict(d)
    assert isinstance(obj, EndpointSlice)
    return obj


def make_pod(ns: str, name: str, ips: Iterable[str], labels: dict[str, str] | None = None,
             mutate: Mut = None, *, ready: bool = True, node: str = "node-1",
             ports: Iterable[dict[str, Any]] = ({"name": "http", "containerPort": 8080},)) -> Pod:
    ips = list(ips)
    d: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"namespace": ns, "name": name, "labels": labels or {}},
                         "spec": {"nodeName": node, "containers": [
                             {"name": "c", "image": "busybox", "ports": [dict(p) for p in ports]}]},
                         "status": {"phase": "Running", "podIPs": [{"ip": i} for i in ips],
                                    "podIP": ips[0] if ips else "",
                                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if mutate:
        mutate(d)
    obj = from_dict(d)
    assert isinstance(obj, Pod)
    return obj


def make_node(name: str, ips: Iterable[str]) -> Node:
    obj = from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": name},
                     "status": {"addresses": [{"type": "InternalIP", "address": i} for i in ips]}})
    assert isinstance(obj, Node)
    return obj


def make_pool(name: str, cidr: str) -> IPPool:
    obj = from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                     "spec": {"cidr": cidr, "natOutgoing": True}})
    assert isinstance(obj, IPPool)
    return obj
