"""A parsed manifest document made a plain JSON tree, within Kubernetes' size limits. Pure.

YAML anchors and aliases let a few hundred bytes stand for gigabytes ("billion laughs"):
the parser shares the aliased node, so parsing is quick, but anything that walks the
result as a tree (validation, the last-applied copy, JSON for the store) multiplies it
out. So before anything else sees a document, `measure` computes its expanded size and
depth over the shared graph (each distinct node once, so a bomb costs microseconds) and
refuses what Kubernetes could never store; only then does `plain` copy it into a fresh
tree of dicts, lists, strings, numbers, booleans and nulls, with every key a string.

Limits: an object is at most 1.5 MiB as JSON (etcd's default request limit, which bounds
every Kubernetes object), a document (a `List` holds many objects) at most 16 MiB once
aliases are expanded, and nesting at most 100 levels (real manifests stay under 20).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_OBJECT_BYTES = 3 * 512 * 1024      # 1.5 MiB: etcd's default --max-request-bytes
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # a whole document, aliases expanded
MAX_DEPTH = 100


class TreeError(ValueError):
    """What is wrong, with the field path where it is (`spec.template` or "")."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        shown = path if len(path) <= 100 else f"{path[:50]}...{path[-40:]}"
        super().__init__(f"{shown}: {message}" if path else message)


class TooBig(TreeError):
    """Over the size limit; `path` is where the running total passed it."""


@dataclass(frozen=True)
class Size:
    bytes: int  # length as compact JSON (strings counted in characters, unescaped)
    depth: int


def _child(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _scalar_size(v: Any, path: str) -> int:
    if v is None or v is True:
        return 4
    if v is False:
        return 5
    if isinstance(v, str):
        return len(v) + 2
    if isinstance(v, int):
        return len(str(v)) if abs(v) < 10**30 else _too_big_int(path)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise TreeError(path, f"{v} is not a JSON number")
        return len(repr(v))
    raise TreeError(path, f"{_yaml_type(v)} cannot be part of a manifest (JSON has no such type)")


def _too_big_int(path: str) -> int:
    raise TreeError(path, "number has more than 30 digits")


def _yaml_type(v: Any) -> str:
    names = {bytes: "binary data (!!binary)", set: "a set (!!set)", tuple: "a pair list"}
    for t, name in names.items():
        if isinstance(v, t):
            return name
    return f"a {type(v).__name__} value"


class _Measure:
    """Expanded size of every distinct container, computed once per node."""

    def __init__(self, limit: int):
        self.limit = limit
        self.sizes: dict[int, Size] = {}
        self.open: set[int] = set()

    def size(self, v: Any, path: str, depth: int) -> Size:
        if not isinstance(v, (dict, list)):
            return Size(_scalar_size(v, path), 0)
        done = self.sizes.get(id(v))
        if done is not None:
            if depth + done.depth > MAX_DEPTH:
                raise TreeError(path, f"nested more than {MAX_DEPTH} levels deep")
            return done
        if id(v) in self.open:
            raise TreeError(path, "a YAML alias refers to a node that contains it (a cycle)")
        if depth >= MAX_DEPTH:
            raise TreeError(path, f"nested more than {MAX_DEPTH} levels deep")
        self.open.add(id(v))
        total, deepest = 2, 0
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, item in items:
            p = _child(path, k)
            s = self.size(item, p, depth + 1)
            total += s.bytes + 1 + (_scalar_size(k, p) + 1 if isinstance(v, dict) else 0)
            deepest = max(deepest, s.depth + 1)
            if total > self.limit:
                raise TooBig(path, f"{'' if path else 'the document '}is more than "
                                      f"{self.limit} bytes as JSON (YAML aliases expanded)")
        self.open.discard(id(v))
        out = Size(total - 1 if v else total, deepest)  # n items, n - 1 commas
        self.sizes[id(v)] = out
        return out


def measure(doc: Any, limit: int = MAX_DOCUMENT_BYTES) -> Size:
    """The expanded size of `doc`; TreeError when over `limit`, too deep, cyclic, or
    holding something JSON cannot (binary, sets, NaN)."""
    return _Measure(limit).size(doc, "", 0)


def plain(v: Any, path: str = "") -> Any:
    """A fresh tree (nothing shared) of `v`, which `measure` accepted. Keys that YAML
    read as numbers, booleans or null become strings, as Kubernetes' YAML reader makes them."""
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, item in v.items():
            key = _key(k)
            if key in out:
                raise TreeError(path, f"key {key!r} is set twice (once as a string, once not)")
            out[key] = plain(item, _child(path, key))
        return out
    if isinstance(v, list):
        return [plain(item, _child(path, i)) for i, item in enumerate(v)]
    return v


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if k is None:
        return "null"
    if isinstance(k, bool):
        return "true" if k else "false"
    return str(k)
