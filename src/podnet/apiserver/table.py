"""Server-side printing: a list or object as a meta.k8s.io/v1 Table (`Accept: ...;as=Table`).

kubectl asks for Tables and prints their cells, so `kubectl get` shows what the server
says. Columns come from columns.py (the same ones `podnet get` prints); wide columns
have priority 1 (`-o wide`). Each row carries the object (includeObject=Object) or its
metadata (the default, PartialObjectMetadata), as kube-apiserver does.
"""
from __future__ import annotations

from typing import Any

from podnet.api.objects import from_dict
from podnet.apiserver import columns
from podnet.apiserver.resources import ApiResource


def wanted(accept: str) -> bool:
    return any("as=Table" in part.replace(" ", "") for part in accept.split(","))


def _definition(header: str, priority: int) -> dict[str, Any]:
    name = header.title() if header not in ("IP", "CLUSTER-IP", "EXTERNAL-IP") else header
    return {"name": name, "type": "string", "format": "name" if header == "NAME" else "",
            "description": "", "priority": priority}


def to_table(body: dict[str, Any], res: ApiResource, include: str = "Metadata") -> dict[str, Any]:
    """`body` is one object or a list (with `items`), as the API serves them."""
    items = body.get("items") if body.get("kind", "").endswith("List") and "items" in body else [body]
    headers, wide = columns.headers_of(res.kind)
    defs = [_definition(h, 0) for h in headers] + [_definition(h, 1) for h in wide]
    rows = []
    ctx = columns.Ctx()
    for raw in items or []:
        cells = columns.cells(res.kind, from_dict(raw), ctx)
        if include == "None":
            obj = None
        elif include == "Object":
            obj = raw
        else:
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": raw.get("metadata") or {}}
        row: dict[str, Any] = {"cells": cells}
        if obj is not None:
            row["object"] = obj
        rows.append(row)
    md = {k: v for k, v in (body.get("metadata") or {}).items()
          if k in ("resourceVersion", "continue", "remainingItemCount")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": md,
            "columnDefinitions": defs, "rows": rows}
