"""The node's CNI daemon: serves podnet-cni and podnet-ipam calls with everything loaded.

Run it in the node's network namespace (`ip netns exec <node> python -m
podnet.cni.daemon`); it binds the abstract socket `podnet-cni` there (see client.py).
Each connection is one plugin call, served on its own thread by exactly the code the
binaries run in-process (`skel.run` with the same handlers), so behaviour cannot differ;
datastores are opened once per URL and kept. A call that crashes the handler still gets
a CNI error answer; the daemon itself keeps serving. It exits on SIGTERM, and by itself
when its node namespace is deleted (so a crashed lab leaves no daemon behind).

Anyone in the namespace can connect to the socket, and the daemon acts as root, so what
a request can ask for is fenced in (issue 12 §1):
- the caller must be root (SO_PEERCRED, checked before a byte is read): anyone else gets
  CNI error 102 at once, so unprivileged connections can neither run anything nor hold
  a worker;
- a request is read within CLIENT_TIMEOUT seconds and up to MAX_REQUEST bytes, so a root
  client that stalls holds a worker for that long at most;
- plugins are looked up on the daemon's own search path (`--cni-path`, default its own
  CNI_PATH or podnet's), whatever CNI_PATH the request carries;
- the daemon serves the one datastore it was started for (`--datastore`): a request
  naming another store URL (a file path for SQLite) is refused, so no request makes it
  open or create a file elsewhere;
- an undecodable request is CNI error 6 (failed to decode content), never a crash.

Besides the plugins `cni` and `ipam` it answers `settle` (empty environment and stdin):
it returns once the kernel has finished every link deletion the daemon answered early
(podwire_netlink.delete_link), so a bench can time a DEL until the link is really gone.
"""
from __future__ import annotations

import argparse
import gc
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from typing import Mapping, NamedTuple

from podnet.cni import ipam_plugin, plugin, skel
from podnet.cni.client import SOCKET_NAME, decode_request, encode_reply
from podnet.cni.errors import DECODE_FAILURE, INVALID_ENV, NOT_PERMITTED, TRY_AGAIN_LATER, CniError
from podnet.cni.guard import NetnsGuard, netns_is_named
from podnet.cni.skel import Handler
from podnet.peercred import peer_uid
from podnet.dataplane.net.podwire_netlink import NetlinkWiring

ORPHAN_CHECK_SECONDS = 2.0
WIRING = NetlinkWiring()  # the daemon's: no `ip` process per call
WORKERS = 8  # parallel calls served at once; more wait in the listen backlog
MAX_REQUEST = 4 << 20  # bytes: a GC's list of every attachment on a node is far below this
CLIENT_TIMEOUT = 5.0  # seconds to receive a whole request (clients send it at once)


class Config(NamedTuple):
    cni_path: str  # where delegated plugins are looked up, whatever the request says
    datastore: str | None  # the one store URL served (None: none)
    client_timeout: float = CLIENT_TIMEOUT
    # binary name -> verbs; serve() gives "cni" the netlink wiring (the binary's: `ip -batch`)
    handlers: Mapping[str, Mapping[str, Handler]] = {"cni": plugin.HANDLERS, "ipam": ipam_plugin.HANDLERS}


def _error(code: int, msg: str, details: str = "") -> bytes:
    doc = json.dumps(CniError(code, msg, details).to_dict()).encode() + b"\n"
    return encode_reply(1, doc, b"")


def _receive(conn: socket.socket, timeout: float) -> bytes:
    """The whole request, or CniError when it is too big or too slow to come."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CniError(TRY_AGAIN_LATER, f"the request did not arrive within {timeout:g} s")
        conn.settimeout(left)
        try:
            b = conn.recv(65536)
        except socket.timeout:
            raise CniError(TRY_AGAIN_LATER, f"the request did not arrive within {timeout:g} s") from None
        if not b:
            return b"".join(chunks)
        size += len(b)
        if size > MAX_REQUEST:
            raise CniError(DECODE_FAILURE, f"request larger than {MAX_REQUEST} bytes refused")
        chunks.append(b)


def _answer(conn: socket.socket, cfg: Config) -> tuple[bytes, bool]:
    """The reply, and whether the whole request was read."""
    uid = peer_uid(conn)
    if uid != 0:
        return _error(NOT_PERMITTED, "the podnet CNI daemon serves root only",
                      f"the caller runs as uid {uid}"), False
    try:
        data = _receive(conn, cfg.client_timeout)
    except CniError as e:
        return _error(e.code, e.msg, e.details), False
    try:
        binary, env, stdin = decode_request(data)
    except ValueError as e:
        return _error(DECODE_FAILURE, "failed to decode content", f"podnet CNI daemon request: {e}"), True
    if binary == "settle":  # benches and tests: wait until every early-answered DEL is done
        WIRING.drain()
        return encode_reply(0, b"", b""), True
    handlers = cfg.handlers.get(binary)
    if handlers is None:
        return _error(INVALID_ENV, f"unknown plugin {binary!r}", f"known: {', '.join(cfg.handlers)}"), True
    env["CNI_PATH"] = cfg.cni_path  # the daemon's plugins, not the caller's choice
    out, err = io.StringIO(), io.StringIO()
    rc = skel.run(handlers, env, stdin, out, err)
    return encode_reply(rc, out.getvalue().encode(), err.getvalue().encode()), True


def _serve_one(conn: socket.socket, cfg: Config) -> None:
    try:
        reply, read_all = _answer(conn, cfg)
        conn.settimeout(cfg.client_timeout)  # a client that does not read cannot hold us
        conn.sendall(reply)
        if not read_all:
            _discard_rest(conn)
    except OSError:
        pass
    finally:
        conn.close()


def _discard_rest(conn: socket.socket) -> None:
    """Before closing on a request not read to its end: a unix socket closed with unread
    data makes the client's next read fail (ECONNRESET) even with our answer queued. So
    shut both ways (the client's further sends now fail at once, EPIPE) and throw away
    what it sent before, without waiting for more."""
    conn.shutdown(socket.SHUT_RDWR)
    while True:
        try:
            if not conn.recv(65536, socket.MSG_DONTWAIT):
                return
        except (BlockingIOError, InterruptedError):
            return


def serve(stop: threading.Event | None = None, ready: threading.Event | None = None,
          cfg: Config | None = None) -> None:
    if cfg is None:
        from podnet.cni.runtime import default_cni_path
        cfg = Config(default_cni_path(), None)
    ipam_plugin.enable_store_cache(cfg.datastore)
    # Pods are wired over the daemon's own netlink sockets, not `ip` processes. The node
    # namespace is checked once here (and then every ORPHAN_CHECK_SECONDS), not on every
    # call; a daemon in an unnamed namespace still serves, refusing kernel work per call as
    # the binary would.
    cni = plugin.Plugin(WIRING, NetnsGuard(confirmed=_netns_still_named()))
    cfg = cfg._replace(handlers={**cfg.handlers, "cni": cni.handlers})
    _warm()
    # What is loaded now lives as long as the daemon: keep it out of the collector's full
    # passes, which would otherwise walk every module's objects in the middle of a call.
    gc.freeze()
    stop = stop or threading.Event()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(SOCKET_NAME)
    srv.listen(128)
    # A fixed set of worker threads, not one per call: each thread keeps its own store
    # connection (SQLite's are per thread), so a new thread per call would leak them. Each
    # worker accepts for itself (the kernel wakes one waiting thread per connection), so no
    # second thread has to be woken to hand a call over (measured ~60 us less per call).
    workers = [threading.Thread(target=_work, args=(srv, stop, cfg), name=f"cni-{i}", daemon=True)
               for i in range(WORKERS)]
    for w in workers:
        w.start()
    if ready:
        ready.set()
    print("podnet-cni daemon ready", flush=True)
    try:
        while not stop.wait(ORPHAN_CHECK_SECONDS):
            if not _netns_still_named():
                print("podnet-cni daemon: my node namespace was deleted; exiting", file=sys.stderr)
                break
    finally:
        stop.set()
        for _ in workers:  # one empty connection per worker: each accepts one, sees stop, ends
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(SOCKET_NAME)
            except OSError:
                break
        for w in workers:
            w.join(10)  # a call still running gets to finish
        srv.close()
        WIRING.drain()


def _work(srv: socket.socket, stop: threading.Event, cfg: Config) -> None:
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except OSError:  # e.g. out of file descriptors: let others finish, then retry
            time.sleep(0.05)
            continue
        if stop.is_set():
            conn.close()
            return
        try:
            _serve_one(conn, cfg)
        except Exception as e:  # a bug: it must not cost the daemon a worker
            print(f"podnet-cni daemon: dropped a request: {e!r}", file=sys.stderr)


def _netns_still_named() -> bool:
    """False once the node namespace we serve is no longer bound under /var/run/netns
    (the lab went down): then nobody can reach us, and we must not linger."""
    try:
        return netns_is_named()
    except OSError:
        return False


def _warm() -> None:
    """Import what calls need now, not on the first pod's clock."""
    import podnet.cni.invoke  # noqa: F401
    import podnet.cni.kcheck  # noqa: F401
    import podnet.datastore.sqlite  # noqa: F401
    import podnet.ipam.allocator  # noqa: F401
    import podnet.ipam.usage  # noqa: F401


def argv(datastore: str | None = None, cni_path: str | None = None) -> list[str]:
    """The daemon's command line (the lab spawns it in each node namespace)."""
    out = [sys.executable, "-m", "podnet.cni.daemon"]
    if datastore:
        out += ["--datastore", datastore]
    if cni_path:
        out += ["--cni-path", cni_path]
    return out


def start(node_netns: str, datastore: str | None = None, cni_path: str | None = None,
          timeout: float = 10.0) -> subprocess.Popen:
    """Start the daemon in `node_netns`, serving `datastore`, and wait until it answers.
    The caller keeps the Popen (its PID) and stops it with `stop()`."""
    p = subprocess.Popen(["ip", "netns", "exec", node_netns, *argv(datastore, cni_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout
    line = p.stdout.readline() if p.stdout else ""
    if "ready" not in line or time.monotonic() > deadline:
        stop(p)
        raise RuntimeError(f"podnet CNI daemon in {node_netns} did not start")
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(args: list[str] | None = None) -> int:
    from podnet.cni.runtime import default_cni_path
    ap = argparse.ArgumentParser(prog="python -m podnet.cni.daemon", description=__doc__.splitlines()[0])
    ap.add_argument("--datastore", help="the datastore URL this node's pods use (the only one served)")
    ap.add_argument("--cni-path", default=os.environ.get("CNI_PATH") or default_cni_path(),
                    help="where delegated plugins are looked up (default: $CNI_PATH, else podnet's)")
    ap.add_argument("--client-timeout", type=float, default=CLIENT_TIMEOUT,
                    help="seconds a client gets to send its request")
    ns = ap.parse_args(args)
    cfg = Config(ns.cni_path, ns.datastore, ns.client_timeout)
    stop_ev = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_ev.set())
    signal.signal(signal.SIGINT, lambda *_: stop_ev.set())
    try:
        serve(stop_ev, cfg=cfg)
    except OSError as e:
        print(f"podnet-cni daemon: cannot listen: {e} (another daemon in this namespace?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PODNET_CNI_NO_DAEMON", "1")  # never call ourselves
    sys.exit(main())
