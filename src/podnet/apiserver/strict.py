"""Field validation (`?fieldValidation=Strict|Warn|Ignore`): fields the Kubernetes schema
does not know. Pure.

kube-apiserver decodes a body into its Go types; a field without a home is dropped, and
reported as it was asked: Strict refuses the request (400, `strict decoding error:
unknown field "spec.bogus"`), Warn (the default) answers with a Warning header per field,
Ignore says nothing. podnet stores what it is given, so it checks the body against the
kinds' schemas (schemas.py): every field of a map the schema describes must be one of its
properties. `status` is not checked (the server owns it); podnet's own kinds are checked
by podnet's validation instead.
"""
from __future__ import annotations

from typing import Any

from podnet.apiserver import schemas
from podnet.apiserver.status import ApiStatus

MODES = ("Strict", "Warn", "Ignore")


def _resolve(s: dict[str, Any], all_schemas: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "allOf" in s and len(s["allOf"]) == 1:
            s = s["allOf"][0]
        elif "$ref" in s:
            s = all_schemas.get(s["$ref"].rsplit("/", 1)[1], {})
        else:
            return s


def _walk(v: Any, s: dict[str, Any], path: str, all_schemas: dict[str, Any], out: list[str]) -> None:
    s = _resolve(s, all_schemas)
    if isinstance(v, dict):
        props = s.get("properties")
        if props is not None:
            for k, sub in v.items():
                where = f"{path}.{k}" if path else str(k)
                if k not in props:
                    out.append(where)
                elif not (path == "" and k == "status"):
                    _walk(sub, props[k], where, all_schemas, out)
        elif isinstance(s.get("additionalProperties"), dict):
            for k, sub in v.items():
                _walk(sub, s["additionalProperties"], f"{path}.{k}", all_schemas, out)
    elif isinstance(v, list) and isinstance(s.get("items"), dict):
        for i, sub in enumerate(v):
            _walk(sub, s["items"], f"{path}[{i}]", all_schemas, out)


def unknown_fields(obj: Any, kind: str) -> list[str]:
    data = schemas._data()
    model = data["roots"].get(kind)
    if model is None or not isinstance(obj, dict):
        return []
    out: list[str] = []
    _walk(obj, data["schemas"][model], "", data["schemas"], out)
    return [p for p in out if not p.startswith("$") and ".$" not in p]


def check(obj: Any, kind: str, mode: str | None) -> list[str]:
    """Warnings to send (Warn); raises 400 (Strict); nothing (Ignore)."""
    mode = mode or "Warn"
    if mode not in MODES:
        raise ApiStatus(400, f"fieldValidation: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "Ignore":
        return []
    found = unknown_fields(obj, kind)
    if found and mode == "Strict":
        raise ApiStatus(400, f"{kind} in version \"{_version(obj)}\" cannot be handled as a {kind}: "
                             "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in found))
    return [f'unknown field "{p}"' for p in found]


def _version(obj: Any) -> str:
    av = str(obj.get("apiVersion") or "") if isinstance(obj, dict) else ""
    return av.rsplit("/", 1)[-1]
