"""`podnet dns`: the sockets around the responder. UDP and TCP on each listen address.

Why threads and blocking sockets rather than asyncio: the hot path is one `recvfrom`,
one dict lookup and one `sendto`; an event loop adds a selector round trip per packet,
which costs more than the answer itself (see the issue's speed facts). So each UDP
socket has one thread doing exactly that; the rare queries that must wait for an
upstream go to a small worker pool, and TCP gets a thread per connection (bounded).
The zone comes from `ZoneFeed` (list + watch); until the first sync, names in our zones
get SERVFAIL.
"""
from __future__ import annotations

import gc
import ipaddress
import logging
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from podnet.datastore.interface import Datastore, open_datastore
from podnet.dns import wire
from podnet.dns.forward import Forwarder
from podnet.dns.records import Zone
from podnet.dns.responder import Pending, Responder
from podnet.dns.source import ZoneFeed
from podnet.dns.tcp_conns import TcpConnTable

log = logging.getLogger(__name__)

MAX_PENDING = 512      # upstream questions in flight; more get REFUSED (CoreDNS max_concurrent)
MAX_TCP = 128          # concurrent TCP connections; the longest idle one makes room for a new one
MAX_TCP_PER_CLIENT = 16  # concurrent TCP connections of one client address
TCP_IDLE = 10.0        # seconds a TCP connection may sit idle between queries
TCP_READ = 2.0         # seconds a query may take to arrive once its length has (slow senders)
UDP_RCVBUF = 4 << 20    # bytes
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; Python does not name it
MAX_UDP_QUERY = 4096   # bigger datagrams are cut here (a real query is far smaller)


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5353`, `fd00::1`, `[fd00::1]:5353` -> (host, port)."""
    t = text.strip()
    host, port = t, default_port
    if t.startswith("["):
        host, bracket, rest = t[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6]:port")
        if rest:
            port = int(rest[1:])
    elif t.count(":") == 1:
        host, p = t.split(":")
        port = int(p)
    ipaddress.ip_address(host)  # raises ValueError on a bad address
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return host, port


def resolv_conf_upstreams(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        out.append(parse_hostport(parts[1].split("%")[0]))
                    except ValueError:
                        continue
    except OSError:
        pass
    return out


def _loops_back(up: tuple[str, int], listen: list[tuple[str, int]]) -> bool:
    """An upstream that is this server itself (what CoreDNS's `loop` plugin guards against)."""
    ip = ipaddress.ip_address(up[0])
    for host, port in listen:
        lip = ipaddress.ip_address(host)
        if port == up[1] and (ip == lip or (lip.is_unspecified and ip.is_loopback)):
            return True
    return False


def _big_receive_buffer(sock: socket.socket) -> None:
    """A burst of queries that miss the cache (a new zone, a client's first search-path
    walk) arrives faster than the slow path answers; the default ~200 KiB buffer holds
    only ~160 datagrams. FORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, UDP_RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class DnsServer:
    def __init__(self, store: Datastore | str, listen: Iterable[tuple[str, int]] = (("0.0.0.0", 53),),
                 zone: str = "cluster.local", ttl: int = 30, upstreams: Iterable[Any] | None = None,
                 pods_mode: str = "insecure", workers: int = 8, cache_ttl: int = 30,
                 cache_bytes: int = 128 << 20):
        self.store = open_datastore(store) if isinstance(store, str) else store
        self._own_store = isinstance(store, str)
        self.listen = [(h, int(p)) for h, p in listen]
        ups = resolv_conf_upstreams() if upstreams is None else [
            u if isinstance(u, tuple) else parse_hostport(str(u)) for u in upstreams]
        self.upstreams = [u for u in ups if not _loops_back(u, self.listen)]
        self.forwarder = Forwarder(self.upstreams, max_ttl=cache_ttl)
        self.responder = Responder(zone, self.forwarder, cache_bytes)
        self.stop_event = threading.Event()
        self.synced = threading.Event()
        self.feed = ZoneFeed(self.store, self._on_zone, zone, ttl, pods_mode, self.stop_event)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dns-upstream")
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self.tcp_conns: TcpConnTable[socket.socket] = TcpConnTable(MAX_TCP, MAX_TCP_PER_CLIENT)
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.bound: list[tuple[str, int]] = []

    # ---- life cycle ---------------------------------------------------------------------
    def start(self, sync_timeout: float = 0.0) -> None:
        """Start the store watch, wait up to `sync_timeout` s for the first zone, then bind
        every socket (an OSError there stops everything again). Waiting first means that
        "port bound" - the lab's readiness check - also means "has the zone", as CoreDNS's
        ready plugin does; past the timeout we serve anyway (SERVFAIL until synced)."""
        self.feed.start()
        if sync_timeout > 0 and not self.synced.wait(sync_timeout):
            log.warning("dns: no zone after %.1fs; serving anyway (SERVFAIL for our zones until synced)",
                        sync_timeout)
        try:
            for host, port in self.listen:
                udp = socket.socket(_family(host), socket.SOCK_DGRAM)
                self._sockets.append(udp)
                tcp = socket.socket(_family(host), socket.SOCK_STREAM)
                self._sockets.append(tcp)
                for s in (udp, tcp):
                    if s.family == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                _big_receive_buffer(udp)
                udp.bind((host, port))
                port = udp.getsockname()[1]  # port 0: the kernel chose; TCP takes the same
                tcp.bind((host, port))
                tcp.listen(128)
                self.bound.append((host, port))
                self._spawn(self._udp_loop, udp, f"dns-udp-{host}:{port}")
                self._spawn(self._tcp_accept, tcp, f"dns-tcp-{host}:{port}")
        except OSError:
            self.stop()
            raise

    def _spawn(self, fn: Any, arg: Any, name: str) -> None:
        t = threading.Thread(target=fn, args=(arg,), name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _on_zone(self, zone: Zone) -> None:
        self.responder.set_zone(zone)
        if self.feed.last_build_full:
            # The cluster state and the zone are millions of long-lived objects at 100k
            # Services; every full collection walked them all, and the objects the cache
            # keeps trigger them: 35 us a cold answer instead of 7 (docs/design/dns.md).
            # Freezing moves them out of the collector's reach; when a later zone drops
            # them, reference counting still frees them (records, dicts and lists: no
            # reference cycles). Only after full builds (start, relist): incremental
            # ones add few objects.
            gc.freeze()
        if not self.synced.is_set():
            log.info("dns: synced, serving %s", zone.origin)
        self.synced.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._close_sockets()
        for t in self._threads:
            t.join(2)
        self.feed.join(2)
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._own_store:
            self.store.close()

    def _close_sockets(self) -> None:
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recvfrom/accept
            except OSError:
                pass
            s.close()

    # ---- UDP ----------------------------------------------------------------------------
    def _udp_loop(self, sock: socket.socket) -> None:
        # The fast paths of Responder.fast / fast_edns (the current cache generation, and
        # for EDNS only the bare OPT most clients send), inlined, then the quick path: at
        # ~100k queries/s every attribute lookup and call shows up in the CPU per query.
        responder, stop = self.responder, self.stop_event
        recvfrom, sendto = sock.recvfrom, sock.sendto
        qd1 = b"\x00\x01\x00\x00\x00\x00\x00\x00"
        qd1_ar1 = b"\x00\x01\x00\x00\x00\x00\x00\x01"
        bare_opt_tail = wire.bare_opt_tail
        while True:
            try:
                data, addr = recvfrom(MAX_UDP_QUERY)
            except OSError:
                if stop.is_set():
                    return
                continue
            if addr is None:  # shutdown() woke us
                if stop.is_set():
                    return
                continue
            if data.startswith(qd1, 4) and data[2] < 2:
                qs = data[12:]
                opt = False
                entry = responder.cached_udp.get(key := qs.lower())
            elif data.startswith(qd1_ar1, 4) and data[2] < 2 and bare_opt_tail(data):
                qs = data[12:-11]
                opt = True
                entry = responder.cached_edns.get(key := qs.lower())
            else:
                self._answer(sock, responder.udp(data), addr)
                continue
            if entry is not None:
                t = entry[data[2]]
                try:
                    if key == qs:
                        sendto(data[:2] + t, addr)
                    else:
                        sendto(data[:2] + t[:10] + qs + t[10 + len(qs):], addr)
                except OSError:
                    pass
                continue
            try:
                res = responder.quick_answer(data, qs, key, opt)
            except Exception:  # noqa: BLE001 - the slow path answers instead
                log.exception("the quick path failed")
                res = None
            if res is None:
                self._answer(sock, responder.udp(data), addr)  # old generation, slow path
                continue
            try:
                sendto(res, addr)
            except OSError:
                pass

    def _answer(self, sock: socket.socket, res: bytes | Pending | None, addr: Any) -> None:
        if isinstance(res, Pending):
            self._defer(sock, res, addr)
        elif res is not None:
            self._send(sock, res, addr)

    def _defer(self, sock: socket.socket, pending: Pending, addr: Any) -> None:
        q = pending.query
        if not self._pending.acquire(blocking=False):
            self._send(sock, wire.error_response(wire.REFUSED, q.qid, q.flags, q.question, q.edns), addr)
            return

        def work() -> None:
            try:
                self._send(sock, pending.run(), addr)
            finally:
                self._pending.release()
        try:
            self.pool.submit(work)
        except RuntimeError:  # shutting down
            self._pending.release()

    @staticmethod
    def _send(sock: socket.socket, data: bytes, addr: Any) -> None:
        try:
            sock.sendto(data, addr)
        except OSError:
            pass

    # ---- TCP ----------------------------------------------------------------------------
    def _tcp_accept(self, lsock: socket.socket) -> None:
        while not self.stop_event.is_set():
            try:
                conn, addr = lsock.accept()
            except OSError:
                if self.stop_event.is_set():
                    return
                continue
            admitted, victim = self.tcp_conns.admit(conn, addr[0])
            if victim is not None:
                _shut(victim)  # its thread sees the end and closes it
            if not admitted:
                conn.close()
                continue
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True, name="dns-tcp-conn").start()

    def _tcp_conn(self, conn: socket.socket) -> None:
        try:
            while not self.stop_event.is_set():
                self.tcp_conns.idle(conn)
                conn.settimeout(TCP_IDLE)
                head = _recv_exact(conn, 2)
                if head is None or not self.tcp_conns.busy(conn):
                    return
                data = _recv_exact(conn, struct.unpack("!H", head)[0], time.monotonic() + TCP_READ)
                if data is None:
                    return
                res = self.responder.handle(data, tcp=True)
                if isinstance(res, Pending):
                    res = res.run()
                if res is None:
                    return  # nothing sensible to say: close, as for garbage
                conn.settimeout(TCP_READ)
                conn.sendall(struct.pack("!H", len(res)) + res)
        except OSError:
            pass
        finally:
            self.tcp_conns.forget(conn)
            conn.close()


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _recv_exact(conn: socket.socket, n: int, deadline: float | None = None) -> bytes | None:
    """n bytes, or None at the end of the stream; past `deadline` raises TimeoutError."""
    buf = b""
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("query not received in time")
            conn.settimeout(left)
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def run_server(store: Datastore | str, listen: Iterable[tuple[str, int]] = (("0.0.0.0", 53),),
               zone: str = "cluster.local", ttl: int = 30, upstreams: Iterable[Any] | None = None,
               pods_mode: str = "insecure", stop_event: threading.Event | None = None,
               ready: threading.Event | None = None, sync_timeout: float = 5.0) -> None:
    """Serve until `stop_event` is set (forever when None). `upstreams` None: the
    nameservers of /etc/resolv.conf (minus this server itself); [] : no forwarding.
    `ready` is set once the sockets are bound (after the first sync, or `sync_timeout`)."""
    srv = DnsServer(store, listen, zone, ttl, upstreams, pods_mode)
    srv.start(sync_timeout)
    if ready is not None:
        ready.set()
    try:
        (stop_event or threading.Event()).wait()
    finally:
        srv.stop()
