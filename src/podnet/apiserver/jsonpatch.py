"""JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) over plain JSON trees. Pure.

Both return a new tree and never edit their input. A JSON Patch that cannot apply
(a missing path, a failed `test`) raises PatchError naming the operation.
"""
from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"path {pointer!r} must start with /")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], tok: str, op: str, allow_end: bool) -> int:
    if tok == "-" and allow_end:
        return len(container)
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        raise PatchError(f"{op}: {tok!r} is not an array index")
    i = int(tok)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"{op}: index {i} is out of range")
    return i


def _parent(doc: Any, toks: list[str], op: str) -> Any:
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, op, False)]
        else:
            raise PatchError(f"{op}: path /{'/'.join(toks)} does not exist")
    return cur


def _get(doc: Any, pointer: str, op: str) -> Any:
    toks = _tokens(pointer)
    if not toks:
        return doc
    parent = _parent(doc, toks, op)
    last = toks[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, op, False)]
    raise PatchError(f"{op}: path {pointer} does not exist")


def _remove(doc: Any, pointer: str, op: str) -> Any:
    toks = _tokens(pointer)
    if not toks:
        raise PatchError(f"{op}: cannot remove the whole document")
    parent = _parent(doc, toks, op)
    if isinstance(parent, dict) and toks[-1] in parent:
        return parent.pop(toks[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, toks[-1], op, False))
    raise PatchError(f"{op}: path {pointer} does not exist")


def _add(doc: Any, pointer: str, value: Any, op: str, replace: bool = False) -> Any:
    toks = _tokens(pointer)
    if not toks:
        return value
    parent = _parent(doc, toks, op)
    if isinstance(parent, dict):
        if replace and toks[-1] not in parent:
            raise PatchError(f"{op}: path {pointer} does not exist")
        parent[toks[-1]] = value
    elif isinstance(parent, list):
        i = _index(parent, toks[-1], op, not replace)
        if replace:
            parent[i] = value
        else:
            parent.insert(i, value)
    else:
        raise PatchError(f"{op}: path {pointer} does not exist")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for n, o in enumerate(ops):
        if not isinstance(o, dict) or not isinstance(o.get("path"), str):
            raise PatchError(f"operation {n}: needs op and path")
        op, path = o.get("op"), o["path"]
        if op in ("add", "replace", "test") and "value" not in o:
            raise PatchError(f"operation {n} ({op}): needs a value")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(o["value"]), op)
        elif op == "replace":
            doc = _add(doc, path, copy.deepcopy(o["value"]), op, replace=True)
        elif op == "remove":
            _remove(doc, path, op)
        elif op in ("move", "copy"):
            if not isinstance(o.get("from"), str):
                raise PatchError(f"operation {n} ({op}): needs from")
            value = _remove(doc, o["from"], op) if op == "move" else copy.deepcopy(_get(doc, o["from"], op))
            doc = _add(doc, path, value, op)
        elif op == "test":
            if _get(doc, path, op) != o["value"]:
                raise PatchError(f"test failed: {path} is not {o['value']!r}")
        else:
            raise PatchError(f"operation {n}: unknown op {op!r}")
    return doc
