"""The input every calculator reads: a snapshot of cluster objects. Pure; imports podnet.api only.

The agent's cache fills a `ClusterState`; calculators (services, policy, routes, nat) read
it and return plain data. Nothing here touches the kernel or the store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from podnet.api.objects import (ClusterNetworkPolicy, EndpointSlice, IPPool, Namespace, NetworkPolicy, Node, Pod,
                                Resource, Service)
from podnet.api.policy import is_staged


@dataclass
class ClusterState:
    """Objects by kind, then by (namespace, name). `node_name` is the node the calculation is for."""
    node_name: str = ""
    objects: dict[str, dict[tuple[str, str], Resource]] = field(default_factory=dict)

    @classmethod
    def from_objects(cls, objs: Iterable[Resource], node_name: str = "") -> "ClusterState":
        st = cls(node_name=node_name)
        for o in objs:
            st.put(o)
        return st

    def put(self, obj: Resource) -> None:
        self.objects.setdefault(obj.kind, {})[(obj.namespace, obj.name)] = obj

    def remove(self, kind: str, namespace: str, name: str) -> None:
        self.objects.get(kind, {}).pop((namespace, name), None)

    def of_kind(self, kind: str) -> Iterator[Resource]:
        return iter(self.objects.get(kind, {}).values())

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self.objects.get(kind, {}).get((namespace, name))

    @property
    def pods(self) -> list[Pod]:
        return [o for o in self.of_kind("Pod") if isinstance(o, Pod)]

    @property
    def services(self) -> list[Service]:
        return [o for o in self.of_kind("Service") if isinstance(o, Service)]

    @property
    def endpoint_slices(self) -> list[EndpointSlice]:
        return [o for o in self.of_kind("EndpointSlice") if isinstance(o, EndpointSlice)]

    @property
    def policies(self) -> list[NetworkPolicy]:
        """The NetworkPolicies in force: a staged one (api/policy.is_staged) is not."""
        return [o for o in self.of_kind("NetworkPolicy") if isinstance(o, NetworkPolicy) and not is_staged(o)]

    @property
    def staged_policies(self) -> list[Resource]:
        """Staged NetworkPolicies and ClusterNetworkPolicies: stored, never enforced."""
        return [o for k in ("NetworkPolicy", "ClusterNetworkPolicy") for o in self.of_kind(k) if is_staged(o)]

    @property
    def cluster_policies(self) -> list[ClusterNetworkPolicy]:
        return [o for o in self.of_kind("ClusterNetworkPolicy")
                if isinstance(o, ClusterNetworkPolicy) and not is_staged(o)]

    @property
    def namespaces(self) -> list[Namespace]:
        return [o for o in self.of_kind("Namespace") if isinstance(o, Namespace)]

    @property
    def nodes(self) -> list[Node]:
        return [o for o in self.of_kind("Node") if isinstance(o, Node)]

    @property
    def ippools(self) -> list[IPPool]:
        return [o for o in self.of_kind("IPPool") if isinstance(o, IPPool)]
