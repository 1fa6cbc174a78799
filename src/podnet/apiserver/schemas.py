"""Schemas for the OpenAPI documents. Pure.

Each served kind gets an object schema tagged with its group/version/kind.
"""
from __future__ import annotations

from typing import Any, Sequence

from podnet.apiserver.resources import ApiResource


def for_group_version(rs: Sequence[ApiResource]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in rs:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        out[f"{r.group or 'core'}.{r.version}.{r.kind}"] = {
            "type": "object", "x-kubernetes-group-version-kind": [gvk],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object"}}}
    return out
