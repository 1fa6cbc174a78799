"""Field sets, as server-side apply records them in `metadata.managedFields` (FieldsV1). Pure.

A field is a path of FieldsV1 elements: `f:spec` (a field of a map), `k:{"name":"c"}` (the
element of a keyed list, keys as the strategic-merge table in smp.py knows them),
`v:"x"` (a value of a set of scalars). Maps are granular (each key is a field); any other
list is atomic (the list is one field). `fields_of` gives every leaf an object sets;
`to_fields_v1`/`from_fields_v1` convert to and from the nested FieldsV1 form, where a
list element carries `".": {}` for itself, as kube-apiserver writes it.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from podnet.apiserver.smp import list_key

Path = tuple[str, ...]
# what apply never owns: identity and the fields the server keeps for itself
IGNORED_TOP = ("apiVersion", "kind", "status")
IGNORED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                "deletionTimestamp", "managedFields", "selfLink")


def _key(elem: dict[str, Any], key: str) -> str:
    return "k:" + json.dumps({key: elem.get(key)}, separators=(",", ":"), sort_keys=True)


def fields_of(obj: dict[str, Any], kind: str, with_status: bool = False) -> set[Path]:
    out: set[Path] = set()
    for k, v in obj.items():
        if k in IGNORED_TOP and not (with_status and k == "status"):
            continue
        if k == "metadata" and isinstance(v, dict):
            meta = {mk: mv for mk, mv in v.items() if mk not in IGNORED_META}
            if meta:
                walk(meta, ("f:metadata",), ("metadata",), kind, out)
            continue
        walk(v, (f"f:{k}",), (k,), kind, out)
    return out


def walk(v: Any, at: Path, names: tuple[str, ...], kind: str, out: set[Path]) -> None:
    if isinstance(v, dict) and v:
        for k, sub in v.items():
            if not str(k).startswith("$"):
                walk(sub, at + (f"f:{k}",), names + (str(k),), kind, out)
        return
    if isinstance(v, list) and v:
        key = list_key(kind, names)
        if key == "":
            for e in v:
                out.add(at + ("v:" + json.dumps(e, separators=(",", ":"), sort_keys=True),))
            return
        if key and all(isinstance(e, dict) and key in e for e in v):
            for e in v:
                elem = at + (_key(e, key),)
                out.add(elem)
                walk({k: x for k, x in e.items() if k != key}, elem, names, kind, out)
                out.add(elem + (f"f:{key}",))
            return
    out.add(at)


def value_at(obj: Any, path: Path) -> Any:
    """The value at `path` (a missing one is None)."""
    cur = obj
    for el in path:
        kind, _, rest = el.partition(":")
        if kind == "f":
            cur = cur.get(rest) if isinstance(cur, dict) else None
        elif kind == "k":
            want = json.loads(rest)
            cur = next((e for e in cur or [] if isinstance(e, dict)
                        and all(e.get(a) == b for a, b in want.items())), None) if isinstance(cur, list) else None
        elif kind == "v":
            val = json.loads(rest)
            cur = val if isinstance(cur, list) and val in cur else None
        if cur is None:
            return None
    return cur


def differs(a: Any, b: Any, path: Path) -> bool:
    """Whether two objects disagree on the field: a keyed list element is a field by its
    presence (its contents are fields of their own), anything else by its value."""
    if path and path[-1].startswith("k:"):
        return (value_at(a, path) is None) != (value_at(b, path) is None)
    return value_at(a, path) != value_at(b, path)


def remove_at(obj: dict[str, Any], path: Path) -> None:
    """Delete the field at `path` from `obj` (in place), leaving no empty map behind it."""
    def go(cur: Any, rest: Path) -> None:
        if not rest:
            return
        kind, _, name = rest[0].partition(":")
        if kind == "f" and isinstance(cur, dict) and name in cur:
            if len(rest) == 1:
                del cur[name]
            else:
                go(cur[name], rest[1:])
                if cur[name] in ({}, []):
                    del cur[name]
        elif kind in ("k", "v") and isinstance(cur, list):
            want = json.loads(name)
            for i, e in enumerate(cur):
                hit = e == want if kind == "v" else (isinstance(e, dict) and all(e.get(a) == b for a, b in want.items()))
                if hit:
                    if len(rest) == 1:
                        del cur[i]
                    else:
                        go(e, rest[1:])
                    break
    go(obj, path)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in sorted(paths):
        node = root
        for el in p:
            node = node.setdefault(el, {})
        if p and p[-1].startswith("k:"):
            node.setdefault(".", {})
    return root


def from_fields_v1(tree: Any, at: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    if at and (not tree or "." in tree):
        out.add(at)
    for k, v in tree.items():
        if k != ".":
            out |= from_fields_v1(v, at + (k,))
    return out


def display(path: Path) -> str:
    """`.spec.replicas`, `.spec.ports[port=80].targetPort`: how conflicts are named."""
    out = ""
    for el in path:
        kind, _, rest = el.partition(":")
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            out += "[" + ",".join(f"{a}={b}" for a, b in json.loads(rest).items()) + "]"
        else:
            out += f"[={rest}]"
    return out
