"""One small cluster for the DNS tests, on the address plan of tests/builders.py."""
from __future__ import annotations

from typing import Any, Callable

from podnet.api.objects import Resource
from podnet.calc.model import ClusterState
from builders import make_namespace, make_pod, make_service, make_slice


def service(ns: str, name: str, mutate: Callable[[dict[str, Any]], None] | None = None, **spec: Any) -> Resource:
    def whole_spec(d: dict[str, Any]) -> None:
        d["spec"] = dict(spec)  # the DNS cases give the whole spec
        if mutate:
            mutate(d)
    return make_service(ns, name, whole_spec)


def endpoint_slice(ns: str, svc: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]],
                   address_type: str = "IPv4", suffix: str = "a") -> Resource:
    return make_slice(ns, svc, endpoints, name=f"{svc}-{suffix}", family=address_type, ports=ports)


def pod(ns: str, name: str, ips: list[str], **spec: Any) -> Resource:
    return make_pod(ns, name, ips, mutate=lambda d: d["spec"].update(spec))


namespace = make_namespace


def ep(ip: str, ready: bool = True, hostname: str = "", pod_name: str = "", ns: str = "default") -> dict[str, Any]:
    d: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        d["hostname"] = hostname
    if pod_name:
        d["targetRef"] = {"kind": "Pod", "namespace": ns, "name": pod_name}
    return d


def cluster() -> ClusterState:
    """default: web (ClusterIP, dual stack, named ports http/tcp and dns/udp, one unnamed),
    v4only; headless `db` (2 ready + 1 not ready, one pod hostname via subdomain),
    headless `empty` (no ready endpoint), headless `lax` (publishNotReadyAddresses);
    ExternalName `ext` -> www.example.test, `inner` -> web.default.svc.cluster.local,
    `loop1` <-> `loop2`. Namespace `other` with service `web`; namespace `quiet` empty."""
    objs = [
        namespace("default"), namespace("other"), namespace("quiet"),
        service("default", "web", clusterIP="10.96.0.20", clusterIPs=["10.96.0.20", "fd00:10:96::20"],
                ipFamilies=["IPv4", "IPv6"],
                ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                       {"name": "dns", "port": 53, "protocol": "UDP"},
                       {"port": 9000}]),
        service("default", "v4only", clusterIP="10.96.0.21", ports=[{"port": 80}]),
        service("other", "web", clusterIP="10.96.0.30", ports=[{"name": "http", "port": 80}]),
        service("default", "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]),
        endpoint_slice("default", "db", [ep("10.244.1.5", pod_name="db-0"),
                                         ep("10.244.2.6", hostname="db-1", pod_name="db-1"),
                                         ep("10.244.3.7", ready=False)],
                       [{"name": "pg", "port": 15432, "protocol": "TCP"}]),
        endpoint_slice("default", "db", [ep("fd00:10:244::5", pod_name="db-0")],
                       [{"name": "pg", "port": 15432, "protocol": "TCP"}], address_type="IPv6", suffix="b"),
        pod("default", "db-0", ["10.244.1.5", "fd00:10:244::5"], hostname="db-0", subdomain="db"),
        pod("default", "db-1", ["10.244.2.6"], hostname="db-1", subdomain="db"),
        service("default", "empty", clusterIP="None"),
        endpoint_slice("default", "empty", [ep("10.244.1.9", ready=False)], []),
        service("default", "lax", clusterIP="None", publishNotReadyAddresses=True),
        endpoint_slice("default", "lax", [ep("10.244.1.10", ready=False)], []),
        service("default", "ext", type="ExternalName", externalName="www.example.test"),
        service("default", "inner", type="ExternalName", externalName="web.default.svc.cluster.local."),
        service("default", "loop1", type="ExternalName", externalName="loop2.default.svc.cluster.local"),
        service("default", "loop2", type="ExternalName", externalName="loop1.default.svc.cluster.local"),
    ]
    return ClusterState.from_objects(objs)
