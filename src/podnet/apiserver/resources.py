"""The resources the API serves: which podnet kind sits behind each group/version/plural. Pure.

One row per resource, as kube-apiserver's discovery lists them: group, version, plural,
kind, namespaced-ness, short names, verbs and subresources. `Endpoints` is read-only
and derived (from EndpointSlices, endpoints.py); every other resource is a kind of the
store. Objects leave the server with the apiVersion of the resource they were read
through (podnet stores Nodes as podnet.io/v1; the API serves them as core v1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
PODNET_GROUP = "podnet.io"


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    kind: str                      # the served kind (= the store's kind, except derived ones)
    namespaced: bool
    short: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()   # "status", "scale"
    derived: bool = False          # computed from other objects, never stored
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def gv_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


RESOURCES: tuple[ApiResource, ...] = (
    ApiResource("", "v1", "namespaces", "Namespace", False, ("ns",), subresources=("status",)),
    ApiResource("", "v1", "pods", "Pod", True, ("po",), subresources=("status", "exec", "log"),
                categories=("all",)),
    ApiResource("", "v1", "services", "Service", True, ("svc",), subresources=("status",),
                categories=("all",)),
    ApiResource("", "v1", "nodes", "Node", False, ("no",), subresources=("status",)),
    ApiResource("", "v1", "endpoints", "Endpoints", True, ("ep",), verbs=READ_VERBS, derived=True),
    ApiResource("apps", "v1", "deployments", "Deployment", True, ("deploy",),
                subresources=("status", "scale"), categories=("all",)),
    ApiResource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ApiResource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ApiResource("policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", "ClusterNetworkPolicy",
                False, ("cnp",), subresources=("status",)),
    ApiResource(PODNET_GROUP, "v1", "ippools", "IPPool", False),
    ApiResource(PODNET_GROUP, "v1", "bgpconfigurations", "BGPConfiguration", False),
    ApiResource(PODNET_GROUP, "v1", "bgppeers", "BGPPeer", False),
    ApiResource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
                False, verbs=("create",), derived=True),
    ApiResource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
                verbs=("create",), derived=True),
    # podnet's IPAM state: what a real cluster serves from deploy/crds.yaml (api/crds.py),
    # written by the IPAM through the Kubernetes datastore (issue 15 §1); `apply` refuses it
    ApiResource(PODNET_GROUP, "v1", "ipamblocks", "IPAMBlock", False),
    ApiResource(PODNET_GROUP, "v1", "serviceipallocations", "ServiceIPAllocation", False),
    ApiResource(PODNET_GROUP, "v1", "nodeportallocations", "NodePortAllocation", False),
)

_BY_PATH: dict[tuple[str, str, str], ApiResource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND: dict[str, ApiResource] = {r.kind: r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ApiResource | None:
    return _BY_PATH.get((group, version, plural))


def for_kind(kind: str) -> ApiResource | None:
    return _BY_KIND.get(kind)


def groups() -> dict[str, list[str]]:
    """group -> its versions, in the order served ("" is the core group)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        vs = out.setdefault(r.group, [])
        if r.version not in vs:
            vs.append(r.version)
    return out


def in_group_version(group: str, version: str) -> list[ApiResource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def served(raw: dict[str, Any], res: ApiResource) -> dict[str, Any]:
    """The stored object as this resource serves it (apiVersion, kind). Copies only the
    top level: the caller must not edit nested values."""
    out = dict(raw)
    out["apiVersion"] = res.api_version
    out["kind"] = res.kind
    return out
