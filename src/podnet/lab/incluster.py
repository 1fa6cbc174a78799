"""The in-cluster way to the API server: the `kubernetes` Service in `default`. Pure.

As in every Kubernetes cluster: ClusterIP 10.96.0.1 (the first address of the Service
range; fd00:10:96::1 too in a dual-stack lab), port 443 named https, no selector, and an
EndpointSlice per family that the API server's address fills (the control-plane node's
underlay address, :6443), so the agents' service proxy takes a pod's connection to
10.96.0.1:443 to the API server. Seeded through the write path with the lab's first objects.
"""
from __future__ import annotations

from typing import Any

from podnet.api.defaults import API_SERVER_PORT
from podnet.lab.topology import LabSpec

SERVICE_IP_V4 = "10.96.0.1"
SERVICE_IP_V6 = "fd00:10:96::1"
LABELS = {"component": "apiserver", "provider": "kubernetes"}


def objects(spec: LabSpec) -> list[dict[str, Any]]:
    cp = spec.nodes[0]
    dual = spec.dual_stack and bool(cp.ip6)
    ips = [SERVICE_IP_V4] + ([SERVICE_IP_V6] if dual else [])
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kubernetes", "namespace": "default", "labels": dict(LABELS)},
               "spec": {"type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips,
                        "ipFamilies": ["IPv4"] + (["IPv6"] if dual else []),
                        "ipFamilyPolicy": "PreferDualStack" if dual else "SingleStack",
                        "sessionAffinity": "None",
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                   "targetPort": API_SERVER_PORT}]}}
    out: list[dict[str, Any]] = [service]
    for family, addr in (("IPv4", cp.ip4), ("IPv6", cp.ip6 if dual else None)):
        if addr:
            out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": "kubernetes" if family == "IPv4" else "kubernetes-ipv6",
                                     "namespace": "default",
                                     "labels": {"kubernetes.io/service-name": "kubernetes",
                                                "endpointslice.kubernetes.io/managed-by": "podnet-apiserver"}},
                        "addressType": family,
                        "endpoints": [{"addresses": [addr], "conditions": {"ready": True},
                                       "nodeName": cp.name}],
                        "ports": [{"name": "https", "port": API_SERVER_PORT, "protocol": "TCP"}]})
    return out


def service_env() -> dict[str, str]:
    """The variables Kubernetes gives every container for the `kubernetes` Service."""
    url = f"tcp://{SERVICE_IP_V4}:443"
    return {"KUBERNETES_SERVICE_HOST": SERVICE_IP_V4, "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": url, "KUBERNETES_PORT_443_TCP": url}
