"""`podnet serve`'s control side (node mode), and the client the kubelet uses.

A unix socket takes JSON lines `{"op": "add", "pod": "ns/name", "netns": NAME, "ports":
[[80, "TCP"], ...]}` (answered once every socket listens: `{"ok": true, "warnings": [...]}`), `{"op": "drain", "pod": ...}` (answered
`{"ok": true, "found": bool, "inflight": N}`), `{"op": "del", "pod": ...}` and
`{"op": "list"}`.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from typing import Any

from podnet.lab.serve import Server, ServeError, raise_fd_limit


def handle_request(server: Server, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    try:
        if op == "add":
            ports = [(int(p[0]), str(p[1])) for p in req.get("ports") or []]
            warnings = server.add_pod(str(req["pod"]), req.get("netns") or None, ports)
            return {"ok": True, "warnings": warnings}
        if op == "drain":
            found, inflight = server.drain_pod(str(req["pod"]))
            return {"ok": True, "found": found, "inflight": inflight}
        if op == "del":
            return {"ok": True, "found": server.del_pod(str(req["pod"]))}
        if op == "list":
            with server.lock:
                return {"ok": True, "pods": {k: {"netns": v.netns, "ports": v.ports}
                                             for k, v in server.pods.items()},
                        "answered": server.answered}
        return {"ok": False, "error": f"unknown op {op!r}: use add, drain, del or list"}
    except (KeyError, TypeError, ValueError) as e:
        return {"ok": False, "error": f"bad request {req!r}: {e}"}
    except (ServeError, OSError) as e:
        return {"ok": False, "error": str(e)}


def _control_handler(server: Server) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for raw in self.rfile:
                try:
                    req = json.loads(raw)
                except ValueError as e:
                    resp: dict[str, Any] = {"ok": False, "error": f"not JSON: {e}"}
                else:
                    resp = handle_request(server, req if isinstance(req, dict) else {})
                self.wfile.write((json.dumps(resp) + "\n").encode())
                self.wfile.flush()
    return Handler


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def run_node_server(control_path: str, stop: threading.Event | None = None) -> None:
    """Serve pods added through the control socket until `stop` (or a signal)."""
    raise_fd_limit()
    server = Server()
    if stop is not None:
        server.stop = stop
    try:
        os.unlink(control_path)
    except FileNotFoundError:
        pass
    ctl = _ControlServer(control_path, _control_handler(server))
    t = threading.Thread(target=ctl.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    try:
        server.serve_forever()
    finally:
        ctl.shutdown()
        ctl.server_close()
        try:
            os.unlink(control_path)
        except FileNotFoundError:
            pass


class ServeClient:
    """The kubelet's side of the control socket (one connection, used under a lock)."""

    def __init__(self, path: str, timeout: float = 30.0):
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self._sock, self._file = s, s.makefile("rb")

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._connect()
                    assert self._sock is not None
                    self._sock.sendall((json.dumps(req) + "\n").encode())
                    line = self._file.readline()
                    if not line:
                        raise ConnectionError("serve closed the control connection")
                    return json.loads(line)
                except (OSError, ValueError) as e:
                    self.close()
                    if attempt == 2:
                        raise ServeError(f"serve control socket {self.path}: {e}") from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None
