"""`kubectl logs` (pods/log): a container's output, as text, followed on request.

Where a container's output is depends on who runs it: the server is given a `Locate`
callable (pod, container) -> file or None (the lab's: its containers with a command
write to the lab's log files; `podnet serve` containers print nothing, so they have
empty logs). Query: container (default: the only one), tailLines, limitBytes, follow
(keep streaming what is appended until the client goes or the pod's file goes).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Mapping

from aiohttp import web

from podnet.apiserver.status import ApiStatus

Locate = Callable[[Mapping[str, Any], str], "Path | None"]
FOLLOW_POLL = 0.2


def container_of(pod: Mapping[str, Any], asked: str) -> str:
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    name = (pod.get("metadata") or {}).get("name")
    if asked:
        if asked not in names:
            raise ApiStatus(400, f"container {asked} is not valid for pod {name}")
        return asked
    if len(names) != 1:
        raise ApiStatus(400, f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(names)}]")
    return names[0]


def _int(q: Mapping[str, str], key: str) -> int | None:
    if not q.get(key):
        return None
    try:
        return max(int(q[key]), 0)
    except ValueError:
        raise ApiStatus(400, f"{key} must be an integer") from None


def tail(data: bytes, lines: int | None, limit: int | None) -> bytes:
    if lines is not None:
        data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines else b""
    if limit is not None:
        data = data[:limit]
    return data


async def serve(request: web.Request, pod: Mapping[str, Any], locate: Locate | None) -> web.StreamResponse:
    q = request.query
    container = container_of(pod, q.get("container", ""))
    path = locate(pod, container) if locate else None
    data = path.read_bytes() if path is not None and path.exists() else b""
    body = tail(data, _int(q, "tailLines"), _int(q, "limitBytes"))
    if q.get("follow") not in ("true", "1") or path is None:
        return web.Response(body=body, content_type="text/plain")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(body)
    offset = len(data)
    try:
        while path.exists():
            await asyncio.sleep(FOLLOW_POLL)
            with path.open("rb") as f:
                f.seek(offset)
                more = f.read()
            if more:
                offset += len(more)
                await resp.write(more)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp
