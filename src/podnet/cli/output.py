"""What `podnet get` prints: the columns of apiserver/columns.py as aligned text tables.
"""
from __future__ import annotations

from typing import Sequence

from podnet.api.objects import Resource
from podnet.apiserver.columns import (NONE, STALE_AFTER, Ctx, age, cells, compact_syncs,  # noqa: F401
                                      headers_of, human_duration, node_agent, node_ready,
                                      parse_time)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, three spaces apart, no trailing spaces (kubectl's tabwriter)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for r in [headers, *rows]:
        cells_ = [str(c).ljust(widths[i]) if i < len(r) - 1 else str(c) for i, c in enumerate(r)]
        lines.append("   ".join(cells_).rstrip())
    return "\n".join(lines)


def render_table(kind: str, objs: Sequence[Resource], ctx: Ctx, wide: bool = False,
                 with_namespace: bool = False, name_prefix: str = "") -> str:
    head, wide_head = headers_of(kind, ctx)
    headers = list(head) + (list(wide_head) if wide else [])
    rows = []
    for o in objs:
        r = cells(kind, o, ctx, wide)
        r[0] = name_prefix + r[0]
        rows.append(([o.namespace] if with_namespace else []) + r)
    return table((["NAMESPACE"] if with_namespace else []) + headers, rows)
