"""The OpenAPI v3 documents kubectl reads (`/openapi/v3`, `/openapi/v3/<group-version>`). Pure.

What kubectl needs from them: per group/version, each resource path with its operations,
tagged `x-kubernetes-group-version-kind`, and the `fieldValidation` parameter of its
write operations (kubectl's `--validate=strict`, the default, asks the server to
validate, which podnet's validation does). The PATCH operations list the patch types
the server takes except strategic merge patch, so kubectl's client-side apply computes
its strategic patch from its own compiled-in Kubernetes types (the v3 route would need
full schemas), and an IPPool (not a type kubectl knows) gets a JSON merge patch. Schemas
(schemas.py) come from the official client's models where they exist.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from podnet.apiserver.discovery import GIT_VERSION
from podnet.apiserver.resources import RESOURCES, ApiResource, groups

_WRITE_PARAMS = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                 for n in ("dryRun", "fieldManager", "fieldValidation")]
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/apply-patch+yaml")


def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _op(r: ApiResource, action: str, write: bool = False, kind: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": f"{action}{r.kind}", "x-kubernetes-action": action,
                          "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version,
                                                              "kind": kind or r.kind},
                          "responses": {"200": {"description": "OK"}}}
    if write:
        op["parameters"] = list(_WRITE_PARAMS)
    return op


def _item_ops(r: ApiResource, kind: str | None = None) -> dict[str, Any]:
    ops: dict[str, Any] = {"get": _op(r, "get", kind=kind)}
    if "update" in r.verbs:
        ops["put"] = _op(r, "put", True, kind)
        patch = _op(r, "patch", True, kind)
        patch["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES}}
        ops["patch"] = patch
        if kind is None:
            ops["delete"] = _op(r, "delete", True)
    return ops


def _paths(r: ApiResource) -> dict[str, Any]:
    base = f"/{_gv_key(r.group, r.version)}"
    coll = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{base}/{r.plural}"
    coll_ops: dict[str, Any] = {"get": _op(r, "list")}
    if "create" in r.verbs:
        coll_ops["post"] = _op(r, "post", True)
    out = {coll: coll_ops, f"{coll}/{{name}}": _item_ops(r)}
    if r.namespaced:
        out[f"{base}/{r.plural}"] = {"get": _op(r, "list")}
    for sub in r.subresources:
        out[f"{coll}/{{name}}/{sub}"] = _item_ops(r, "Scale" if sub == "scale" else None)
    return out


@lru_cache(maxsize=None)
def _gv_doc(group: str, version: str) -> bytes:
    from podnet.apiserver import schemas
    paths: dict[str, Any] = {}
    rs = [r for r in RESOURCES if r.group == group and r.version == version]
    for r in rs:
        paths.update(_paths(r))
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes (podnet)", "version": GIT_VERSION},
           "paths": paths, "components": {"schemas": schemas.for_group_version(rs)}}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _root() -> dict[str, Any]:
    out = {}
    for g, vs in groups().items():
        for v in vs:
            h = hashlib.sha512(_gv_doc(g, v)).hexdigest()[:64].upper()
            out[_gv_key(g, v)] = {"serverRelativeURL": f"/openapi/v3/{_gv_key(g, v)}?hash={h}"}
    return {"paths": out}


def document(path: str) -> bytes | None:
    """The document at `path` (JSON bytes), or None (404)."""
    path = path.rstrip("/")
    if path == "/openapi/v3":
        return json.dumps(_root()).encode()
    prefix = "/openapi/v3/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    if len(parts) == 2 and parts[0] == "api":
        g, v = "", parts[1]
    elif len(parts) == 3 and parts[0] == "apis":
        g, v = parts[1], parts[2]
    else:
        return None
    if v not in groups().get(g, []):
        return None
    return _gv_doc(g, v)
