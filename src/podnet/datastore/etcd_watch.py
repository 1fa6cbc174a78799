"""One etcd watch stream over the grpc-gateway (/v3/watch), as a generator of raw events.

A reader thread parses the newline-delimited JSON stream into a queue; the generator
takes from the queue so it can notice `stop` promptly, and on exit shuts the socket
down, which unblocks the reader. Compaction (`canceled` with `compact_revision`) is
raised as `Compacted`; a broken stream as `Unavailable`, after which the caller resumes
from the last revision it saw.
"""
from __future__ import annotations

import json
import queue
import socket
import threading
from typing import Any, Iterator

import requests
from etcd3gw.utils import _encode

from podnet.datastore.interface import Compacted, DatastoreError, Unavailable

CONNECT_TIMEOUT = 5.0
STOP_POLL = 0.05
_EOF = object()


def _reader(resp: requests.Response, out: "queue.Queue[Any]") -> None:
    buf = b""
    try:
        for chunk in resp.iter_content(chunk_size=None):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    out.put(json.loads(line))
        if buf.strip():
            out.put(json.loads(buf))
        out.put(_EOF)
    except Exception as e:  # noqa: BLE001 - every failure ends the stream the same way
        out.put(e)


def _socket_of(resp: requests.Response) -> socket.socket | None:
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    return getattr(conn, "sock", None)


def _keepalive(sock: socket.socket | None) -> None:
    """A watch may be silent for hours; TCP keepalive notices a peer that vanished
    without a reset (a partitioned node) within about half a minute, so the watch
    breaks and the caller reconnects instead of waiting forever."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    except OSError:
        pass


def watch_stream(session: requests.Session, url: str, key: str, range_end: str,
                 from_revision: int, stop: Any, label: str) -> Iterator[dict[str, Any]]:
    """Raw etcd events (kv base64-encoded) with mod_revision > from_revision."""
    create: dict[str, Any] = {"key": _encode(key), "range_end": _encode(range_end),
              "start_revision": from_revision + 1, "prev_kv": True}
    try:
        resp = session.post(url, json={"create_request": create}, stream=True,
                            timeout=(CONNECT_TIMEOUT, None))
    except requests.RequestException as e:
        raise Unavailable(f"etcd {label}: cannot start watch: {e}") from e
    if resp.status_code != 200:
        text = resp.text
        resp.close()
        raise Unavailable(f"etcd {label}: watch refused: HTTP {resp.status_code} {text}")
    sock = _socket_of(resp)
    _keepalive(sock)
    messages: "queue.Queue[Any]" = queue.Queue()
    reader = threading.Thread(target=_reader, args=(resp, messages), daemon=True,
                              name="pn-ds-etcd-watch")
    reader.start()
    last = from_revision
    try:
        while not (stop is not None and stop.is_set()):
            try:
                msg = messages.get(timeout=STOP_POLL)
            except queue.Empty:
                continue
            if msg is _EOF:
                raise Unavailable(f"etcd {label}: watch stream ended at revision {last}")
            if isinstance(msg, Exception):
                raise Unavailable(f"etcd {label}: watch stream broke at revision {last}: {msg}")
            if "error" in msg:
                raise Unavailable(f"etcd {label}: watch error: {msg['error']}")
            result = msg.get("result") or {}
            if int(result.get("compact_revision") or 0):
                # etcd keeps events at and above compact_revision.
                raise Compacted(last, int(result["compact_revision"]))
            if result.get("canceled"):
                raise DatastoreError(f"etcd {label}: watch canceled: "
                                     f"{result.get('cancel_reason', 'no reason given')}")
            for ev in result.get("events") or []:
                rev = int(ev["kv"].get("mod_revision") or 0)
                if rev <= from_revision:
                    continue  # never an event the caller has already seen
                last = rev
                yield ev
                if stop is not None and stop.is_set():
                    return
    finally:
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        resp.close()
        reader.join(1.0)
