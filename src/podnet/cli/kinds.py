"""Kind names as kubectl spells them: plural, singular, short names, API group.

`resolve_kind("svc")` -> the Service entry; `ref(obj)` -> `service/web`,
`deployment.apps/web` (what `apply` and `get -o name` print, as kubectl does).
"""
from __future__ import annotations

from dataclasses import dataclass

from podnet.api.objects import Resource
from podnet.cli.errors import UserError


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short: tuple[str, ...] = ()
    group: str = ""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """`deployment.apps`, `service` (core kinds carry no group)."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    @property
    def names(self) -> tuple[str, ...]:
        q = (f"{self.plural}.{self.group}", f"{self.singular}.{self.group}") if self.group else ()
        return (self.plural, self.singular, *self.short, *q)


KIND_INFOS: tuple[KindInfo, ...] = (
    KindInfo("Pod", "pods", ("po",)),
    KindInfo("Service", "services", ("svc",)),
    KindInfo("Deployment", "deployments", ("deploy",), "apps"),
    KindInfo("Namespace", "namespaces", ("ns",)),
    KindInfo("NetworkPolicy", "networkpolicies", ("netpol",), "networking.k8s.io"),
    KindInfo("EndpointSlice", "endpointslices", (), "discovery.k8s.io"),
    KindInfo("ClusterNetworkPolicy", "clusternetworkpolicies", ("cnp",), "policy.networking.k8s.io"),
    KindInfo("IPPool", "ippools", (), "podnet.io"),
    KindInfo("BGPConfiguration", "bgpconfigurations", (), "podnet.io"),
    KindInfo("BGPPeer", "bgppeers", (), "podnet.io"),
    KindInfo("Node", "nodes", ("no",)),
)
_BY_NAME: dict[str, KindInfo] = {n: k for k in KIND_INFOS for n in k.names}
BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KIND_INFOS}


def resolve_kind(name: str) -> KindInfo:
    info = _BY_NAME.get(name.lower())
    if info is None:
        raise UserError(f'the server doesn\'t have a resource type "{name}" (known: '
                        f'{", ".join(k.plural for k in KIND_INFOS)})')
    return info


def info_of(kind: str) -> KindInfo:
    return BY_KIND.get(kind) or KindInfo(kind, kind.lower() + "s")


def ref(obj: Resource) -> str:
    return f"{info_of(obj.kind).qualified}/{obj.name}"
