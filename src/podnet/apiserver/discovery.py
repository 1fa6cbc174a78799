"""Discovery documents: /version, /api, /apis, and each group/version's resource list. Pure.

Both forms kubectl reads: aggregated discovery (apidiscovery.k8s.io/v2
APIGroupDiscoveryList: every group, version and resource in the answer to /api and /apis,
when the client's Accept asks for it, as kubectl 1.3x does), and the unaggregated one
(APIVersions, APIGroupList, APIResourceList) for clients that ask for plain JSON. Subresources are listed as `pods/status`, `deployments/scale`
(kind Scale, group autoscaling), as kube-apiserver lists them.
"""
from __future__ import annotations

from typing import Any

from podnet.apiserver.resources import ApiResource, groups, in_group_version

MAJOR, MINOR = "1", "37"
GIT_VERSION = f"v{MAJOR}.{MINOR}.0-podnet"
_SUB_VERBS = ("get", "patch", "update")


def version() -> dict[str, Any]:
    import platform
    return {"major": MAJOR, "minor": MINOR, "gitVersion": GIT_VERSION, "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "python",
            "platform": f"{platform.system().lower()}/{platform.machine()}"}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in groups().items() if g]}


def api_group(name: str) -> dict[str, Any] | None:
    vs = groups().get(name)
    if not name or not vs:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, vs)}


def _entry(r: ApiResource) -> dict[str, Any]:
    d: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                         "kind": r.kind, "verbs": list(r.verbs)}
    if r.short:
        d["shortNames"] = list(r.short)
    if r.categories:
        d["categories"] = list(r.categories)
    return d


def _subresource(r: ApiResource, sub: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                         "kind": r.kind, "verbs": list(_SUB_VERBS)}
    if sub == "scale":
        d.update(kind="Scale", group="autoscaling", version="v1")
    if sub == "exec":
        d.update(kind="PodExecOptions", verbs=["create", "get"])
    if sub == "log":
        d.update(kind="Pod", verbs=["get"])
    return d


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    rs = in_group_version(group, version)
    if not rs:
        return None
    out = []
    for r in rs:
        out.append(_entry(r))
        out.extend(_subresource(r, s) for s in r.subresources)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": out}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= params:
            return True
    return False


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _aggregated_resource(r: ApiResource) -> dict[str, Any]:
    d: dict[str, Any] = {"resource": r.plural, "responseKind": _gvk(r.group, r.version, r.kind),
                         "scope": "Namespaced" if r.namespaced else "Cluster",
                         "singularResource": r.singular, "verbs": list(r.verbs)}
    if r.short:
        d["shortNames"] = list(r.short)
    if r.categories:
        d["categories"] = list(r.categories)
    subs = []
    for sub in r.subresources:
        legacy = _subresource(r, sub)
        kind = _gvk(legacy.get("group", r.group), legacy.get("version", r.version), legacy["kind"])
        subs.append({"subresource": sub, "responseKind": kind, "verbs": legacy["verbs"]})
    if subs:
        d["subresources"] = subs
    return d


def aggregated(core: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (core) or /apis (every named group)."""
    items = []
    for g, versions in groups().items():
        if (g == "") != core:
            continue
        items.append({"metadata": {"name": g}, "versions": [
            {"version": v, "freshness": "Current",
             "resources": [_aggregated_resource(r) for r in in_group_version(g, v)]} for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
