"""`podnet serve`: the lab's workload. One process serves the sockets of many pods.

A socket belongs to the network namespace it was created in, for its whole life, so a
thread that joined a pod's netns creates that pod's sockets and hands them to the one
event loop (epoll) that serves them all: hundreds of pods cost file descriptors, not
processes. Every answer is one line, `<namespace>/<name> <client-ip>`, so a probe can
tell which pod answered and whether the source address survived the path:

- TCP: a client that sends an HTTP request gets `HTTP/1.0 200` with the line as body;
  one that sends anything else, or nothing for 150 ms, gets the line; then close.
- UDP: every datagram gets the line back.
- SCTP: served where the kernel can; where it can't, the port is reported once as a
  warning and the other ports are still served.

Each port is one dual-stack socket (IPv6 with V6ONLY off) so IPv4 and IPv6 clients are
both served; IPv4 clients are reported as plain IPv4.

Ending like a real server (issue 17 §1): `drain` of a pod is its SIGTERM. It accepts
what already waits in the listen backlog (those clients completed their handshake and
count as in flight), then closes the pod's listening and UDP sockets (stop accepting),
and lets the connections it holds get their answers; it reports how many are still in
flight, so the kubelet asks again until none are left or the grace period is over, then
sends `del` (SIGKILL: whatever is left is closed). A SIGTERM to the process itself
(`podnet serve` in either mode) drains every pod the same way and exits once the last
answer is sent.

The control socket of node mode is in lab/serve_control.py.
"""
from __future__ import annotations

import errno
import os
import queue
import resource
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from podnet.dataplane.net.sysctl import call_in_netns

IPPROTO_SCTP = 132
HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")
TCP_WAIT = 0.15


class ServeError(Exception):
    pass


def client_ip(addr: Any) -> str:
    ip = str(addr[0]).split("%")[0]
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def answer_line(pod: str, addr: Any) -> bytes:
    return f"{pod} {client_ip(addr)}\n".encode()


def http_answer(line: bytes, head: bool) -> bytes:
    hdr = (f"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(line)}\r\n"
           f"Connection: close\r\n\r\n").encode()
    return hdr if head else hdr + line


def open_socket(port: int, proto: str) -> socket.socket:
    """A listening (TCP/SCTP) or bound (UDP) dual-stack socket in the calling thread's netns."""
    kind = socket.SOCK_DGRAM if proto == "UDP" else socket.SOCK_STREAM
    pnum = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": IPPROTO_SCTP}[proto]
    last: OSError | None = None
    for fam, host in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            s = socket.socket(fam, kind, pnum)
        except OSError as e:
            last = e
            if e.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                raise
            continue
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((host, port))
            if kind == socket.SOCK_STREAM:
                s.listen(256)
            s.setblocking(False)
            return s
        except OSError as e:
            s.close()
            last = e
    assert last is not None
    raise last


@dataclass
class _Conn:
    sock: socket.socket
    pod: str
    peer: Any
    deadline: float


@dataclass
class PodEntry:
    pod: str
    netns: str | None
    ports: list[tuple[int, str]]
    sockets: list[socket.socket] = field(default_factory=list)


class Server:
    """The event loop plus the table of pods it serves."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.pods: dict[str, PodEntry] = {}
        self.lock = threading.Lock()
        self._todo: queue.Queue[Callable[[], None]] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._conns: dict[int, _Conn] = {}
        self.stop = threading.Event()
        self.answered = 0

    # ---- pods (any thread) --------------------------------------------------------
    def add_pod(self, pod: str, netns: str | None, ports: list[tuple[int, str]]) -> list[str]:
        """Open every port of the pod (in its netns); returns warnings for ports the kernel
        cannot serve (SCTP here). Raises ServeError when a port cannot be opened otherwise.
        Re-adding a pod with the same netns and ports is a no-op."""
        ports = sorted(set((int(p), str(proto).upper()) for p, proto in ports))
        with self.lock:
            old = self.pods.get(pod)
            if old and old.netns == netns and old.ports == ports:
                return []
        if old:
            self.del_pod(pod)
        warnings: list[str] = []

        def opener() -> list[socket.socket]:
            out = []
            try:
                for port, proto in ports:
                    try:
                        out.append(open_socket(port, proto))
                    except OSError as e:
                        if proto == "SCTP" and e.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                            warnings.append(f"{proto} port {port}: not supported by this kernel "
                                            f"({os.strerror(e.errno)}); other ports are served")
                            continue
                        raise ServeError(f"pod {pod}: cannot listen on {proto} port {port}: {e}") from e
            except BaseException:
                for s in out:
                    s.close()
                raise
            return out

        socks = call_in_netns(netns, opener)
        entry = PodEntry(pod, netns, ports, socks)
        with self.lock:
            self.pods[pod] = entry
        def register() -> None:
            for s in socks:
                self.sel.register(s, selectors.EVENT_READ, ("listen", pod))
        self._call(register)
        return warnings

    def del_pod(self, pod: str) -> bool:
        with self.lock:
            entry = self.pods.pop(pod, None)
        if entry is None:
            return False

        def close() -> None:
            for s in entry.sockets:
                try:
                    self.sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
            for fd, c in list(self._conns.items()):  # SIGKILL: what is left in flight is cut
                if c.pod == pod:
                    del self._conns[fd]
                    try:
                        self.sel.unregister(c.sock)
                    except (KeyError, ValueError):
                        pass
                    c.sock.close()
        self._call(close)
        return True

    def drain_pod(self, pod: str) -> tuple[bool, int]:
        """Stop accepting for `pod` (once), finishing what its backlog holds; returns
        (known, connections still in flight). Idempotent: ask again to see the count fall."""
        with self.lock:
            entry = self.pods.get(pod)
        if entry is None:
            return False, 0
        done = threading.Event()
        left: list[int] = []

        def drain() -> None:
            self._close_listeners(entry)
            left.append(sum(1 for c in self._conns.values() if c.pod == pod))
            done.set()
        self._call(drain)
        if not done.wait(5.0):
            return True, 1  # the loop is busy: still in flight, ask again
        return True, left[0]

    def _close_listeners(self, entry: PodEntry) -> None:
        """The loop thread: accept the backlog (handshakes already done), then close."""
        socks, entry.sockets = entry.sockets, []
        for s in socks:
            try:
                if s.type != socket.SOCK_DGRAM:
                    self._on_listen(s, entry.pod)
            except OSError:
                pass
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def _call(self, fn: Callable[[], None]) -> None:
        self._todo.put(fn)
        os.write(self._wake_w, b"x")

    # ---- the loop (one thread) ----------------------------------------------------
    def serve_forever(self) -> None:
        """Until `stop`; then drain every pod and return once no answer is owed."""
        draining = False
        while not (draining and not self._conns):
            if self.stop.is_set() and not draining:
                draining = True
                with self.lock:
                    entries = list(self.pods.values())
                for e in entries:
                    self._close_listeners(e)
                continue
            timeout = 0.5
            if self._conns:
                timeout = max(0.0, min(c.deadline for c in self._conns.values()) - time.monotonic())
            for key, _ in self.sel.select(timeout):
                what, pod = key.data
                try:
                    if what == "wake":
                        self._drain()
                    elif what == "listen":
                        self._on_listen(key.fileobj, pod)  # type: ignore[arg-type]
                    else:
                        self._on_conn(key.fileobj)  # type: ignore[arg-type]
                except OSError:
                    continue  # one bad client never stops the server
            now = time.monotonic()
            for fd, c in list(self._conns.items()):
                if c.deadline <= now:
                    self._reply(c, answer_line(c.pod, c.peer))

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                fn = self._todo.get_nowait()
            except queue.Empty:
                return
            fn()

    def _on_listen(self, s: socket.socket, pod: str) -> None:
        if s.type == socket.SOCK_DGRAM:
            for _ in range(64):
                try:
                    _, addr = s.recvfrom(65535)
                except BlockingIOError:
                    return
                s.sendto(answer_line(pod, addr), addr)
                self.answered += 1
            return
        for _ in range(64):
            try:
                conn, addr = s.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            c = _Conn(conn, pod, addr, time.monotonic() + TCP_WAIT)
            self._conns[conn.fileno()] = c
            self.sel.register(conn, selectors.EVENT_READ, ("conn", pod))

    def _on_conn(self, conn: socket.socket) -> None:
        c = self._conns.get(conn.fileno())
        if c is None:
            return
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        line = answer_line(c.pod, c.peer)
        if data.startswith(HTTP_METHODS):
            line = http_answer(line, data.startswith(b"HEAD "))
        self._reply(c, line)

    def _reply(self, c: _Conn, payload: bytes) -> None:
        self._conns.pop(c.sock.fileno(), None)
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.setblocking(True)
            c.sock.settimeout(1.0)
            c.sock.sendall(payload)
            self.answered += 1
        except OSError:
            pass
        finally:
            c.sock.close()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_direct(pod: str, ports: list[tuple[int, str]], stop: threading.Event | None = None,
               log: Callable[[str], None] = print) -> None:
    """Serve one identity on the given ports in the current namespace."""
    server = Server()
    if stop is not None:
        server.stop = stop
    for w in server.add_pod(pod, None, ports):
        log(f"warning: {w}")
    log(f"serving {pod} on " + ", ".join(f"{p}/{proto}" for p, proto in sorted(set(ports))))
    server.serve_forever()
