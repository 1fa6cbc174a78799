"""Kubernetes and podnet objects: `from_dict` picks the typed view of a manifest by its
`kind`; every kind's class is importable from here. Pure.

Where each lives: api/meta.py (`Resource`, `ObjectKey`, the table of kinds), api/core.py
(Namespace, Node, Pod, Deployment), api/services.py (Service, EndpointSlice), api/policy.py
(NetworkPolicy), api/cluster_policy.py (ClusterNetworkPolicy), api/ipam.py (IPPool).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from podnet.api.core import (IP_ADDRS_ANNOTATIONS, Container, ContainerPort, Deployment, Namespace,
                             Node, Pod, containers_of, node_report, requested_ips)
from podnet.api.cluster_policy import ClusterNetworkPolicy, ClusterRule
from podnet.api.ipam import IPPool
from podnet.api.meta import (ALT_API_VERSIONS, INTERNAL_KINDS, KINDS, PROTOCOLS, ObjectKey, Resource,
                             is_namespaced)
from podnet.api.policy import IPBlock, NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule
from podnet.api.services import Endpoint, EndpointPort, EndpointSlice, Service, ServicePort

__all__ = ["ClusterNetworkPolicy", "ClusterRule", "ALT_API_VERSIONS", "INTERNAL_KINDS", "IP_ADDRS_ANNOTATIONS", "KINDS", "PROTOCOLS",
           "Container", "ContainerPort", "Deployment", "Endpoint", "EndpointPort", "EndpointSlice",
           "IPBlock", "IPPool", "Namespace", "NetworkPolicy", "Node", "ObjectKey", "Pod",
           "PolicyPeer", "PolicyPort", "PolicyRule", "Resource", "Service", "ServicePort",
           "containers_of", "from_dict", "is_namespaced", "iter_kinds", "node_report", "requested_ips"]

_BY_KIND: dict[str, type[Resource]] = {
    c.kind_name: c for c in (Namespace, Node, Pod, Deployment, Service, EndpointSlice,
                             NetworkPolicy, ClusterNetworkPolicy, IPPool)
}


def from_dict(d: Mapping[str, Any]) -> Resource:
    cls = _BY_KIND.get(str(d.get("kind", "")), Resource)
    return cls(d)


def iter_kinds() -> Iterator[str]:
    return iter(KINDS)
