"""A request path, as kube-apiserver reads it. Pure.

`/api/v1/namespaces/default/pods/web/status` ->
Target(group "", version "v1", namespace "default", plural "pods", name "web",
subresource "status"). `/api/v1/namespaces/x` is the Namespace x (and `.../x/status` its
status subresource), while `/api/v1/namespaces/x/pods` lists pods in x.
"""
from __future__ import annotations

from dataclasses import dataclass

from podnet.apiserver.resources import ApiResource, lookup
from podnet.apiserver.status import ApiStatus

_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Target:
    group: str
    version: str
    namespace: str         # "" = cluster-scoped or all namespaces
    plural: str            # "" = the group/version's discovery document
    name: str = ""
    subresource: str = ""

    @property
    def resource(self) -> ApiResource:
        r = lookup(self.group, self.version, self.plural)
        if r is None:
            raise ApiStatus(404, "the server could not find the requested resource", "NotFound",
                            {"kind": self.plural, **({"group": self.group} if self.group else {})})
        return r


def parse(path: str) -> Target | None:
    """None when the path is not under /api or /apis (discovery roots included)."""
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 2 and segs[0] == "api":
        group, version, rest = "", segs[1], segs[2:]
    elif len(segs) >= 3 and segs[0] == "apis":
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return None
    if not rest:
        return Target(group, version, "", "")
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        ns, rest = rest[1], rest[2:]
    else:
        ns = ""
    if len(rest) > 3:
        raise ApiStatus(404, "the server could not find the requested resource")
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return Target(group, version, ns, plural, name, sub)
