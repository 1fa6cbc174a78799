"""Every object's common part: the kinds podnet knows (apiVersion, namespaced), `ObjectKey`
and `Resource`, the manifest kept whole with typed read-only views. Pure.

A `Resource` wraps the manifest dict exactly as written (every field survives a round
trip through the store) and adds read-only accessors for what podnet uses. Subclasses
per kind (api/core.py, api/services.py, api/policy.py, api/ipam.py) add kind-specific
accessors; api/objects.py's `from_dict` picks the subclass by `kind`. Mutating helpers
return new objects (`with_status`, `with_spec`), never edit in place.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

# kind -> (apiVersion, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("v1", False),
    "Node": ("podnet.io/v1", False),
    "Pod": ("v1", True),
    "Service": ("v1", True),
    "Deployment": ("apps/v1", True),
    "EndpointSlice": ("discovery.k8s.io/v1", True),
    "NetworkPolicy": ("networking.k8s.io/v1", True),
    "ClusterNetworkPolicy": ("policy.networking.k8s.io/v1alpha2", False),
    "IPPool": ("podnet.io/v1", False),
    "IPAMBlock": ("podnet.io/v1", False),
    "ServiceIPAllocation": ("podnet.io/v1", False),
    "NodePortAllocation": ("podnet.io/v1", False),
    "BGPConfiguration": ("podnet.io/v1", False),
    "BGPPeer": ("podnet.io/v1", False),
}
# Kinds podnet writes for itself (IPAM state): stored like any object, refused by `apply`.
INTERNAL_KINDS: frozenset[str] = frozenset({"IPAMBlock", "ServiceIPAllocation", "NodePortAllocation"})
# Other apiVersions accepted for a kind (users write `v1` Nodes, for example).
ALT_API_VERSIONS: dict[str, tuple[str, ...]] = {"Node": ("v1",)}

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class ObjectKey:
    kind: str
    namespace: str  # "" for cluster-scoped kinds
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


class Resource:
    kind_name: ClassVar[str] = ""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]):
        self.raw: dict[str, Any] = dict(raw)

    # ---- identity -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        return self.raw.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        if not is_namespaced(self.kind):
            return ""
        return str(self.metadata.get("namespace") or "default")

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.namespace, self.name)

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("labels") or {}).items()}

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("annotations") or {}).items()}

    @property
    def spec(self) -> dict[str, Any]:
        return self.raw.get("spec") or {}

    @property
    def status(self) -> dict[str, Any]:
        return self.raw.get("status") or {}

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def resource_version(self) -> int:
        try:
            return int(self.metadata.get("resourceVersion", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def deletion_timestamp(self) -> str | None:
        return self.metadata.get("deletionTimestamp")

    # ---- copies ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)

    def with_status(self, status: Mapping[str, Any]) -> "Resource":
        d = self.to_dict()
        d["status"] = copy.deepcopy(dict(status))
        return _from_dict(d)

    def with_spec(self, spec: Mapping[str, Any]) -> "Resource":
        d = self.to_dict()
        d["spec"] = copy.deepcopy(dict(spec))
        return _from_dict(d)

    def with_metadata(self, **fields: Any) -> "Resource":
        d = self.to_dict()
        d.setdefault("metadata", {}).update(copy.deepcopy(fields))
        return _from_dict(d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resource) and self.raw == other.raw

    def __repr__(self) -> str:
        return f"<{self.key}>"


def is_namespaced(kind: str) -> bool:
    return KINDS.get(kind, ("", True))[1]


def _from_dict(d: Mapping[str, Any]) -> Resource:
    # the registry of kinds imports every kind's module, which imports this one
    from podnet.api.objects import from_dict
    return from_dict(d)
