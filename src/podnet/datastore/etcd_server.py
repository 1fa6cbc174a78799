"""Start and stop one real etcd server (a single-member cluster), by its own PID.

Used by the tests (a free loopback port, a temp data dir) and by the lab (inside the
control-plane node's network namespace, on its underlay address). With `netns`, etcd is
started through `ip netns exec`, which execs etcd in place, so the PID we keep is
etcd's own; the health check then connects from inside that namespace too.

With `tls` (issue 12 §1) etcd serves only HTTPS (and TLS on its unix socket, `unixs://`)
and asks every client for a certificate signed by the CA (`--client-cert-auth`); its peer
listener uses the same certificate and CA. The datastore URL is then `etcds://...?ca=&cert=&key=`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote

import requests

from podnet.datastore.interface import Unavailable
from podnet.datastore.transport import Tls, netns_session, plain_session

DEFAULT_BINARY = "/usr/bin/etcd"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ServerTls:
    """etcd's own certificate and key (SANs: every address clients dial, and localhost
    for the unix socket), and the CA client certificates must be signed by."""
    ca: str
    cert: str
    key: str


def tls_flags(tls: ServerTls) -> list[str]:
    """etcd flags for TLS with client certificates, clients and peers alike."""
    return ["--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca,
            "--client-cert-auth",
            "--peer-cert-file", tls.cert, "--peer-key-file", tls.key,
            "--peer-trusted-ca-file", tls.ca, "--peer-client-cert-auth"]


def tls_query(tls: Tls) -> str:
    """The query part of an etcds:// URL for these files."""
    return "&".join(f"{k}={quote(v, safe='/')}" for k, v in
                    (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)))


class EtcdServer:
    def __init__(self, data_dir: str, *, name: str = "pn-etcd", client_host: str = "127.0.0.1",
                 client_port: int | None = None, peer_port: int | None = None,
                 netns: str | None = None, unix_socket: str | None = None,
                 binary: str = DEFAULT_BINARY, log_path: str | None = None,
                 auto_compaction_retention: int = 100_000,
                 extra_args: Sequence[str] = (), tls: ServerTls | None = None,
                 client_tls: Tls | None = None) -> None:
        """Ports default to free loopback ports chosen at start(); inside a netns pass
        them explicitly (default 2379/2380 there). `unix_socket`: also listen on this
        path (etcd+unix:// URLs). Old revisions are auto-compacted beyond the last
        `auto_compaction_retention` (0: never). `tls`: serve TLS only and require client
        certificates; `client_tls` is the certificate the health check (and
        `datastore_url`) uses."""
        self.data_dir = os.path.abspath(data_dir)
        self.name = name
        self.client_host = client_host
        self.netns = netns
        self.client_port = client_port or (2379 if netns else 0)
        self.peer_port = peer_port or (2380 if netns else 0)
        if unix_socket and ":" not in os.path.basename(unix_socket):
            raise ValueError(f"unix_socket {unix_socket!r}: etcd needs a file name of the form "
                             f"NAME:PORT (e.g. etcd.sock:0)")
        self.unix_socket = os.path.abspath(unix_socket) if unix_socket else None
        self.binary = binary
        self.log_path = log_path or self.data_dir.rstrip("/") + ".log"
        self.auto_compaction_retention = auto_compaction_retention
        self.extra_args = list(extra_args)
        if (tls is None) != (client_tls is None):
            raise ValueError("tls and client_tls go together")
        self.tls = tls
        self.client_tls = client_tls
        self.proc: subprocess.Popen[bytes] | None = None
        self._fixed_ports = bool(client_port) or bool(netns)

    # ---- addresses ------------------------------------------------------------------
    @property
    def client_url(self) -> str:
        return f"{self._scheme}://{_hostport(self.client_host, self.client_port)}"

    @property
    def _scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def peer_url(self) -> str:
        return f"{self._scheme}://{_hostport(self.client_host, self.peer_port)}"

    def datastore_url(self, prefix: str = "/podnet") -> str:
        """The `etcd://` (`etcds://` with TLS) URL podnet's datastore opens to reach this server."""
        q = [f"netns={self.netns}"] if self.netns else []
        if self.client_tls:
            q.append(tls_query(self.client_tls))
        scheme = "etcds" if self.client_tls else "etcd"
        return (f"{scheme}://{_hostport(self.client_host, self.client_port)}{prefix}"
                + ("?" + "&".join(q) if q else ""))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def argv(self) -> list[str]:
        # etcd wants unix://host:port and binds the literal "host:port" relative to its
        # working directory, so etcd runs in the socket's directory (see _spawn_and_wait).
        unix = "unixs" if self.tls else "unix"
        listen = self.client_url + (f",{unix}://{os.path.basename(self.unix_socket)}"
                                    if self.unix_socket else "")
        argv = [self.binary, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", listen, "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", f"{self.name}={self.peer_url}",
                "--initial-cluster-state", "new", "--initial-cluster-token", self.name,
                "--logger", "zap", "--log-outputs", "stderr"]
        if self.auto_compaction_retention:
            argv += ["--auto-compaction-mode", "revision",
                     "--auto-compaction-retention", str(self.auto_compaction_retention)]
        if self.tls:
            argv += tls_flags(self.tls)
        argv += self.extra_args
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + argv

    # ---- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "EtcdServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not os.path.exists(self.binary):
            raise Unavailable(f"etcd binary {self.binary} not found (Debian: apt install etcd-server)")
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(attempts):
            if not self._fixed_ports:
                # Another process may grab a port between our probe and etcd's bind;
                # a retry with fresh ports covers that race.
                self.client_port, self.peer_port = free_port(self.client_host), free_port(self.client_host)
            try:
                self._spawn_and_wait(timeout)
                return self
            except Unavailable:
                if attempt == attempts - 1:
                    raise
        return self

    def _spawn_and_wait(self, timeout: float) -> None:
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        if self.unix_socket and os.path.exists(self.unix_socket):
            os.unlink(self.unix_socket)  # a stale socket from a killed etcd blocks bind
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=os.path.dirname(self.unix_socket)
                                         if self.unix_socket else None)
        finally:
            log.close()
        with open(self.pid_file, "w") as f:
            f.write(f"{self.proc.pid}\n")
        try:
            self.wait_healthy(timeout)
        except Unavailable:
            self.stop()
            raise

    def wait_healthy(self, timeout: float = 30.0) -> None:
        tls = self.client_tls
        session = netns_session(self.netns, tls) if self.netns else plain_session(tls)
        deadline = time.monotonic() + timeout
        last = ""
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise Unavailable(f"etcd exited with {self.proc.returncode} during start; "
                                      f"log: {self.log_path}: {self._log_tail()}")
                try:
                    r = session.get(self.client_url + "/health", timeout=1)
                    if r.status_code == 200 and r.json().get("health") in ("true", True):
                        return
                    last = r.text
                except (requests.RequestException, ValueError) as e:
                    last = str(e)
                time.sleep(0.05)
        finally:
            session.close()
        raise Unavailable(f"etcd at {self.client_url} not healthy after {timeout}s ({last}); "
                          f"log: {self.log_path}: {self._log_tail()}")

    def _log_tail(self, n: int = 600) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our etcd (by its PID), SIGKILL if it does not exit in time."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass

    @property
    def pid_file(self) -> str:
        return self.data_dir.rstrip("/") + ".pid"

    @classmethod
    def stop_leftover(cls, data_dir: str, timeout: float = 10.0) -> bool:
        """Stop an etcd a crashed owner left running on `data_dir`, found by its PID file
        (never by name). The PID is used only if /proc says it is still an etcd on that
        data dir. Returns True if one was stopped."""
        pid_file = os.path.abspath(data_dir).rstrip("/") + ".pid"
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            return False
        if os.path.abspath(data_dir).encode() not in argv or not any(
                a.endswith(b"etcd") for a in argv[:1]):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        os.unlink(pid_file)
        return True

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again on the same ports and data (clients see a broken
        connection, then the same store)."""
        self.stop()
        self._fixed_ports, fixed = True, self._fixed_ports
        try:
            self.start(timeout)
        finally:
            self._fixed_ports = fixed

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
