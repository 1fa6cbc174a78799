"""Strategic merge patch, as k8s.io/apimachinery/pkg/util/strategicpatch applies it. Pure.

Like a JSON merge patch (maps merge, null deletes), except that lists follow the
`patchStrategy`/`patchMergeKey` of the Kubernetes type they sit in (LISTS below, taken
from the core/v1, apps/v1 and meta/v1 Go types): a list with a merge key merges element
by element (`containers` by name, container `ports` by containerPort, Service `ports`
by port, conditions by type, ...), a `merge` list of scalars is a set union
(finalizers), and every other list is replaced whole. Directives:
- `$patch: delete` in a list element deletes the element with that key; in a map, the map;
- `$patch: replace` in a map replaces it; as a list element, the list becomes the patch's;
- `$retainKeys: [...]` keeps only those keys of the map (Deployment `strategy`, volumes);
- `$deleteFromPrimitiveList/<f>: [...]` removes those values from the scalar list f;
- `$setElementOrder/<f>: [...]` orders the merged list f as given (kubectl apply sends it).
"""
from __future__ import annotations

import copy
from typing import Any

DIRECTIVE = "$patch"
RETAIN = "$retainKeys"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
ORDER = "$setElementOrder/"


class SmpError(ValueError):
    pass


# Within a pod spec (core/v1 PodSpec, Container): path -> merge key ("" = scalar set union)
_POD_SPEC: dict[tuple[str, ...], str] = {
    ("containers",): "name", ("initContainers",): "name", ("ephemeralContainers",): "name",
    ("volumes",): "name", ("imagePullSecrets",): "name", ("hostAliases",): "ip",
    ("containers", "ports"): "containerPort", ("initContainers", "ports"): "containerPort",
    ("containers", "env"): "name", ("initContainers", "env"): "name",
    ("containers", "volumeMounts"): "mountPath", ("initContainers", "volumeMounts"): "mountPath",
    ("containers", "volumeDevices"): "devicePath",
}
_META: dict[tuple[str, ...], str] = {("finalizers",): "", ("ownerReferences",): "uid"}


def _under(prefix: tuple[str, ...], table: dict[tuple[str, ...], str]) -> dict[tuple[str, ...], str]:
    return {prefix + k: v for k, v in table.items()}


LISTS: dict[str, dict[tuple[str, ...], str]] = {
    "Pod": {**_under(("spec",), _POD_SPEC), ("status", "conditions"): "type",
            ("status", "podIPs"): "ip", ("status", "hostIPs"): "ip"},
    "Deployment": {**_under(("spec", "template", "spec"), _POD_SPEC),
                   **_under(("spec", "template", "metadata"), _META),
                   ("status", "conditions"): "type"},
    "Service": {("spec", "ports"): "port"},
    "Node": {("spec", "podCIDRs"): "", ("status", "conditions"): "type",
             ("status", "addresses"): "type"},
    "Namespace": {("status", "conditions"): "type"},
}


def list_key(kind: str, path: tuple[str, ...]) -> str | None:
    """The merge key of the list at `path` ("" for a set of scalars), None = replace."""
    if len(path) >= 1 and path[0] == "metadata":
        return _META.get(path[1:])
    return LISTS.get(kind, {}).get(path)


def strategic_merge(live: Any, patch: Any, kind: str) -> Any:
    if not isinstance(patch, dict):
        raise SmpError("a strategic merge patch must be an object")
    out = _merge_map(live if isinstance(live, dict) else {}, patch, (), kind)
    if out is None:
        raise SmpError("the patch deletes the whole object")
    return out


def _merge_map(orig: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...],
               kind: str) -> dict[str, Any] | None:
    directive = patch.get(DIRECTIVE)
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive not in (None, "merge"):
        raise SmpError(f"unknown $patch directive {directive!r}")
    out = dict(orig)
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k == DIRECTIVE or k == RETAIN:
            continue
        if k.startswith(ORDER):
            orders[k[len(ORDER):]] = v if isinstance(v, list) else []
            continue
        if k.startswith(DELETE_PRIMITIVE):
            f = k[len(DELETE_PRIMITIVE):]
            gone = v if isinstance(v, list) else []
            if isinstance(out.get(f), list):
                out[f] = [x for x in out[f] if x not in gone]
            continue
        if k.startswith("$"):
            raise SmpError(f"unknown directive {k!r}")
        if v is None:
            out.pop(k, None)
            continue
        sub = path + (k,)
        cur = out.get(k)
        if isinstance(v, dict):
            merged = _merge_map(cur if isinstance(cur, dict) else {}, v, sub, kind)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _merge_list(cur if isinstance(cur, list) else [], v, sub, kind)
        else:
            out[k] = copy.deepcopy(v)
    for f, order in orders.items():
        if isinstance(out.get(f), list):
            out[f] = _ordered(out[f], order, list_key(kind, path + (f,)))
    if RETAIN in patch:
        keep = set(patch[RETAIN] or [])
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _merge_list(orig: list[Any], patch: list[Any], path: tuple[str, ...], kind: str) -> list[Any]:
    key = list_key(kind, path)
    if any(isinstance(e, dict) and e.get(DIRECTIVE) == "replace" for e in patch):
        return [copy.deepcopy(e) for e in patch if not (isinstance(e, dict) and DIRECTIVE in e)]
    if key is None:
        return [copy.deepcopy(e) for e in patch]
    if key == "":
        out = list(orig)
        for e in patch:
            if e not in out:
                out.append(copy.deepcopy(e))
        return out
    out = [copy.deepcopy(e) for e in orig]
    for e in patch:
        if not isinstance(e, dict) or key not in e:
            raise SmpError(f"{'.'.join(path)}: every element needs its merge key {key!r}")
        at = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == e[key]), None)
        if e.get(DIRECTIVE) == "delete":
            if at is not None:
                del out[at]
            continue
        if at is None:
            merged = _merge_map({}, e, path, kind)
            if merged is not None:
                out.append(merged)
        else:
            merged = _merge_map(out[at], e, path, kind)
            if merged is None:
                del out[at]
            else:
                out[at] = merged
    return out


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(e: Any) -> Any:
        if key and isinstance(e, dict):
            return e.get(key)
        return e
    wanted = [ident(o) for o in order]
    first = sorted((e for e in items if ident(e) in wanted), key=lambda e: wanted.index(ident(e)))
    return first + [e for e in items if ident(e) not in wanted]
