"""Where each kind of the store lives in the Kubernetes API (the Kubernetes datastore's map). Pure.

Kubernetes' own kinds are served at their own group/version (a podnet Node, stored as
podnet.io/v1, is a core v1 Node in the API); podnet's own kinds (IP pools and the IPAM
state) are served by podnet's API server under the `podnet.io` group, as the
CustomResourceDefinitions of deploy/crds.yaml would serve them in a real cluster.
"""
from __future__ import annotations

from dataclasses import dataclass

from podnet.api.meta import KINDS, is_namespaced

PODNET_GROUP = "podnet.io"


@dataclass(frozen=True)
class KubeKind:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool
    status: bool = False   # has a status subresource: PUT on the object ignores `status`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return base + (f"/{name}" if name else "")


_TABLE: tuple[KubeKind, ...] = (
    KubeKind("Namespace", "", "v1", "namespaces", False, True),
    KubeKind("Node", "", "v1", "nodes", False, True),
    KubeKind("Pod", "", "v1", "pods", True, True),
    KubeKind("Service", "", "v1", "services", True, True),
    KubeKind("Deployment", "apps", "v1", "deployments", True, True),
    KubeKind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", True),
    KubeKind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", True),
    KubeKind("ClusterNetworkPolicy", "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", False),
    KubeKind("IPPool", PODNET_GROUP, "v1", "ippools", False),
    KubeKind("IPAMBlock", PODNET_GROUP, "v1", "ipamblocks", False),
    KubeKind("ServiceIPAllocation", PODNET_GROUP, "v1", "serviceipallocations", False),
    KubeKind("NodePortAllocation", PODNET_GROUP, "v1", "nodeportallocations", False),
    KubeKind("BGPConfiguration", PODNET_GROUP, "v1", "bgpconfigurations", False),
    KubeKind("BGPPeer", PODNET_GROUP, "v1", "bgppeers", False),
)
BY_KIND: dict[str, KubeKind] = {k.kind: k for k in _TABLE}
assert set(BY_KIND) == set(KINDS), "every kind of the store has its place in the API"
assert all(k.namespaced == is_namespaced(k.kind) for k in _TABLE)


def podnet_kinds() -> tuple[KubeKind, ...]:
    """The kinds a real cluster would serve from podnet's CRDs."""
    return tuple(k for k in _TABLE if k.group == PODNET_GROUP)
