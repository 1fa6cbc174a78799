"""HTTP(S) transports for the etcd client: sockets inside a named network namespace, or
on a unix socket, with or without TLS (`Tls`: the CA to verify etcd with and the client
certificate to present, issue 12 §1). Plain TCP needs only `plain_session`.

Why a thread: setns(CLONE_NEWNET) changes the namespace of the calling *thread* only,
and a socket stays in the namespace it was created in for its whole life. So a short
helper thread enters /var/run/netns/NAME, creates the socket, and exits; the caller
connects and uses the socket from its own thread. The process (and every other
thread) stays in its own namespace: nothing of the root namespace is changed.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from podnet.setns import NETNS_DIR, NetnsError, enter


@dataclass(frozen=True)
class Tls:
    """File paths: the CA that signed etcd's certificate, our certificate and its key."""
    ca: str
    cert: str
    key: str


def socket_in_netns(netns: str, family: int = socket.AF_INET,
                    type_: int = socket.SOCK_STREAM) -> socket.socket:
    """A new, unconnected socket living in network namespace `netns` (a name under
    /var/run/netns, as `ip netns add` creates). Needs CAP_SYS_ADMIN."""
    path = os.path.join(NETNS_DIR, netns)
    result: dict[str, Any] = {}

    def make() -> None:
        try:
            enter(path)
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

    def _new_conn(self) -> socket.socket:  # used by the HTTPS subclass too: TLS wraps it
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
    """An adapter whose pools build connections of one given class (`tls`: HTTPS ones,
    verifying the server against the CA and presenting the client certificate)."""

    def __init__(self, conn_cls: type[HTTPConnection], tls: Tls | None = None):
        super().__init__()
        self._conn_cls = conn_cls
        self._tls = tls
        self._pools: dict[tuple[str, int], HTTPConnectionPool] = {}
        self._pools_lock = threading.Lock()

    def _pool(self, url: str) -> HTTPConnectionPool:
        parsed = requests.utils.urlparse(url)
        key = (parsed.hostname or "localhost", parsed.port or 80)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                if self._tls is not None:
                    pool = HTTPSConnectionPool(key[0], key[1], maxsize=10, cert_reqs="CERT_REQUIRED",
                                               ca_certs=self._tls.ca, cert_file=self._tls.cert,
                                               key_file=self._tls.key)
                else:
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


def plain_session(tls: Tls | None = None) -> requests.Session:
    """A session that ignores proxy/netrc environment settings: datastore traffic must go
    straight to the store (and skipping the lookups saves time on every request)."""
    s = requests.Session()
    s.trust_env = False
    if tls is not None:
        s.verify = tls.ca
        s.cert = (tls.cert, tls.key)
    return s


def _session(adapter: HTTPAdapter, tls: Tls | None) -> requests.Session:
    s = plain_session(tls)
    s.mount("https://" if tls else "http://", adapter)
    return s


def _conn_class(base: type[HTTPConnection], tls: Tls | None, **attrs: str) -> type[HTTPConnection]:
    """`base`'s way of making the socket, on an HTTPS connection when `tls` is given
    (HTTPSConnection.connect calls _new_conn, then wraps the socket in TLS)."""
    bases: tuple[type, ...] = (base, HTTPSConnection) if tls else (base,)
    return type(base.__name__.lstrip("_") + ("_tls" if tls else ""), bases, attrs)


def netns_session(netns: str, tls: Tls | None = None) -> requests.Session:
    """A requests session whose connections are made inside `netns` (https:// with tls)."""
    return _session(_CustomAdapter(_conn_class(_NetnsConnection, tls, netns=netns), tls), tls)


def unix_session(socket_path: str, tls: Tls | None = None) -> requests.Session:
    """A requests session whose requests all go to the unix socket `socket_path`."""
    return _session(_CustomAdapter(_conn_class(_UnixConnection, tls, socket_path=socket_path), tls), tls)
