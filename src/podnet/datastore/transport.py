"""HTTP transports for the etcd client: sockets inside a named network namespace, or on
a unix socket. Plain TCP needs nothing from here.

Why a thread: setns(CLONE_NEWNET) changes the namespace of the calling *thread* only,
and a socket stays in the namespace it was created in for its whole life. So a short
helper thread enters /var/run/netns/NAME, creates the socket, and exits; the caller
connects and uses the socket from its own thread. The process (and every other
thread) stays in its own namespace: nothing of the root namespace is changed.
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(OSError):
    pass


def _setns(fd: int, nstype: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, nstype)
        return
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in_netns(netns: str, family: int = socket.AF_INET,
                    type_: int = socket.SOCK_STREAM) -> socket.socket:
    """A new, unconnected socket living in network namespace `netns` (a name under
    /var/run/netns, as `ip netns add` creates). Needs CAP_SYS_ADMIN."""
    path = os.path.join(NETNS_DIR, netns)
    result: dict[str, Any] = {}

    def make() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            result["sock"] = socket.socket(family, type_)
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=make, name=f"pn-ds-netns-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        e = result["error"]
        raise NetnsError(e.errno, f"cannot create a socket in network namespace {netns!r} "
                                  f"({path}): {e.strerror or e}")
    return result["sock"]


def _timeout_of(conn: HTTPConnection) -> float | None:
    t = conn.timeout
    return float(t) if isinstance(t, (int, float)) else None


class _NetnsConnection(HTTPConnection):
    netns: str = ""

    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, 0, socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise NewConnectionError(self, f"cannot resolve {self._dns_host}: {e}") from e
        last: Exception | None = None
        for family, type_, _proto, _canon, addr in infos:
            try:
                sock = socket_in_netns(self.netns, family, type_)
            except NetnsError as e:
                raise NewConnectionError(self, str(e)) from e
            try:
                sock.settimeout(_timeout_of(self))
                sock.connect(addr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except socket.timeout as e:
                sock.close()
                raise ConnectTimeoutError(self, f"connect to {addr} in netns {self.netns} "
                                                f"timed out") from e
            except OSError as e:
                sock.close()
                last = e
        raise NewConnectionError(self, f"cannot connect to {self._dns_host}:{self.port} in "
                                       f"netns {self.netns}: {last}")


class _UnixConnection(HTTPConnection):
    socket_path: str = ""

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_timeout_of(self))
            sock.connect(self.socket_path)
        except OSError as e:
            sock.close()
            raise NewConnectionError(self, f"cannot connect to unix socket "
                                           f"{self.socket_path}: {e}") from e
        return sock


class _CustomAdapter(HTTPAdapter):
    """An adapter whose pools build connections of one given class."""

    def __init__(self, conn_cls: type[HTTPConnection]):
        super().__init__()
        self._conn_cls = conn_cls
        self._pools: dict[tuple[str, int], HTTPConnectionPool] = {}
        self._pools_lock = threading.Lock()

    def _pool(self, url: str) -> HTTPConnectionPool:
        parsed = requests.utils.urlparse(url)
        key = (parsed.hostname or "localhost", parsed.port or 80)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = HTTPConnectionPool(key[0], key[1], maxsize=10)
                pool.ConnectionCls = self._conn_cls
                self._pools[key] = pool
            return pool

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> HTTPConnectionPool:
        return self._pool(request.url)

    def get_connection(self, url: str, proxies: Any = None) -> HTTPConnectionPool:
        return self._pool(url)

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for p in pools:
            p.close()
        super().close()


def plain_session() -> requests.Session:
    """A session that ignores proxy/netrc environment settings: datastore traffic must go
    straight to the store (and skipping the lookups saves time on every request)."""
    s = requests.Session()
    s.trust_env = False
    return s


def _session(adapter: HTTPAdapter) -> requests.Session:
    s = plain_session()
    s.mount("http://", adapter)
    return s


def netns_session(netns: str) -> requests.Session:
    """A requests session whose http:// connections are made inside `netns`."""
    cls = type(f"NetnsConnection_{netns}", (_NetnsConnection,), {"netns": netns})
    return _session(_CustomAdapter(cls))


def unix_session(socket_path: str) -> requests.Session:
    """A requests session whose http:// requests all go to the unix socket `socket_path`."""
    cls = type("UnixConnection", (_UnixConnection,), {"socket_path": socket_path})
    return _session(_CustomAdapter(cls))
