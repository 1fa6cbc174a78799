"""PATCH: read the live object, apply the patch by its content type, write it back (CAS).

application/json-patch+json (RFC 6902), application/merge-patch+json (RFC 7386),
application/strategic-merge-patch+json (smp.py), application/apply-patch+yaml
(server-side apply, ssa.py). The result is written with the live object's
resourceVersion, so a concurrent write makes the patch retry on the new state (as
kube-apiserver does), unless the patch itself names a resourceVersion.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from podnet.apiserver import bodies, jsonpatch, smp, ssa
from podnet.apiserver.crud import Crud, scale_of
from podnet.apiserver.resources import ApiResource
from podnet.apiserver.status import ApiStatus

ATTEMPTS = 10
JSON_PATCH, MERGE, STRATEGIC, APPLY = bodies.PATCH_TYPES


def patched(live: dict[str, Any], patch: Any, mt: str, kind: str) -> dict[str, Any]:
    try:
        if mt == JSON_PATCH:
            out = jsonpatch.json_patch(live, patch)
        elif mt == MERGE:
            out = jsonpatch.merge_patch(live, patch)
        else:
            out = smp.strategic_merge(live, patch, kind)
    except (jsonpatch.PatchError, smp.SmpError) as e:
        raise ApiStatus(422 if mt == JSON_PATCH else 400, f"the patch could not be applied: {e}") from None
    if not isinstance(out, dict):
        raise ApiStatus(422, "the patched object is not an object")
    return out


def patch(crud: Crud, res: ApiResource, ns: str, name: str, sub: str, data: bytes,
          content_type: str | None, params: Mapping[str, str], manager: str = "") -> dict[str, Any]:
    """`manager`: who the write is recorded for (managed.py); server-side apply needs
    `params["fieldManager"]` itself, as kube-apiserver."""
    mt = bodies.media_type(content_type)
    if not mt:
        raise ApiStatus(415, "a PATCH needs a Content-Type: one of " + ", ".join(bodies.PATCH_TYPES))
    body = bodies.decode(data, content_type, bodies.PATCH_TYPES)
    if mt == APPLY:
        if sub:
            raise ApiStatus(415, "server-side apply of a subresource is not supported here")
        return ssa.apply(crud, res, ns, name, body, params)
    if mt != JSON_PATCH and not isinstance(body, dict):
        raise ApiStatus(400, "a merge patch must be a JSON object")
    for _ in range(ATTEMPTS):
        live = crud.get(res, ns, name)
        if sub == "scale":
            new = patched(scale_of(live), body, mt, "Scale")
            return crud.update_scale(res, ns, name, new, manager)
        new = patched(copy.deepcopy(live), body, mt, res.kind)
        md = new.setdefault("metadata", {}) if isinstance(new.get("metadata"), dict) else None
        if md is None:
            raise ApiStatus(422, "metadata must be an object")
        pinned = _names_version(body, mt)
        if not pinned:
            md["resourceVersion"] = live["metadata"].get("resourceVersion")
        try:
            if sub == "status":
                return crud.update_status(res, ns, name, new)
            return crud.update(res, ns, name, new, manager)
        except ApiStatus as e:
            if e.code == 409 and e.reason == "Conflict" and not pinned:
                continue
            raise
    raise ApiStatus(409, f"{res.plural} {name!r}: too many concurrent writes; try again", "Conflict")


def _names_version(body: Any, mt: str) -> bool:
    if mt == JSON_PATCH:
        return any(isinstance(o, dict) and o.get("path") == "/metadata/resourceVersion" for o in body)
    return bool(isinstance(body, dict) and isinstance(body.get("metadata"), dict)
                and body["metadata"].get("resourceVersion"))
