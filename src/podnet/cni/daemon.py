"""The node's CNI daemon: serves podnet-cni and podnet-ipam calls with everything loaded.

Run it in the node's network namespace (`ip netns exec <node> python -m
podnet.cni.daemon`); it binds the abstract socket `podnet-cni` there (see client.py).
Each connection is one plugin call, served on its own thread by exactly the code the
binaries run in-process (`skel.run` with the same handlers), so behaviour cannot differ;
datastores are opened once per URL and kept. A call that crashes the handler still gets
a CNI error answer; the daemon itself keeps serving. It exits on SIGTERM, and by itself
when its node namespace is deleted (so a crashed lab leaves no daemon behind).
"""
from __future__ import annotations

import gc
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from podnet.cni import ipam_plugin, plugin, skel, veth
from podnet.cni.client import SOCKET_NAME, decode_request, encode_reply

ORPHAN_CHECK_SECONDS = 2.0
WORKERS = 8  # parallel calls served at once; more wait in the listen backlog
HANDLERS = {"cni": plugin.HANDLERS, "ipam": ipam_plugin.HANDLERS}


def _serve_one(conn: socket.socket) -> None:
    try:
        chunks = []
        while True:
            b = conn.recv(65536)
            if not b:
                break
            chunks.append(b)
        binary, env, stdin = decode_request(b"".join(chunks))
        out, err = io.StringIO(), io.StringIO()
        handlers = HANDLERS.get(binary)
        if handlers is None:
            rc = 1
            out.write('{"cniVersion":"1.1.0","code":4,"msg":"unknown plugin %r"}\n' % binary)
        else:
            rc = skel.run(handlers, env, stdin, out, err)
        conn.sendall(encode_reply(rc, out.getvalue().encode(), err.getvalue().encode()))
    except OSError:
        pass
    finally:
        conn.close()


def serve(stop: threading.Event | None = None, ready: threading.Event | None = None) -> None:
    ipam_plugin.enable_store_cache()
    veth.USE_NETLINK = True
    # Checked once here (and then every ORPHAN_CHECK_SECONDS), not on every call. A daemon
    # in an unnamed namespace still serves, refusing kernel work per call as the binary would.
    veth.NETNS_CONFIRMED = _netns_still_named()
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
    workers = [threading.Thread(target=_work, args=(srv, stop), name=f"cni-{i}", daemon=True)
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
        from podnet.cni import fastwire
        fastwire.drain()


def _work(srv: socket.socket, stop: threading.Event) -> None:
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
            _serve_one(conn)
        except Exception as e:  # a malformed request must not cost the daemon a worker
            print(f"podnet-cni daemon: dropped a malformed request: {e!r}", file=sys.stderr)


def _netns_still_named() -> bool:
    """False once the node namespace we serve is no longer bound under /var/run/netns
    (the lab went down): then nobody can reach us, and we must not linger."""
    try:
        return veth.netns_is_named()
    except OSError:
        return False


def _warm() -> None:
    """Import what calls need now, not on the first pod's clock."""
    import podnet.cni.fastwire  # noqa: F401
    import podnet.cni.invoke  # noqa: F401
    import podnet.cni.kcheck  # noqa: F401
    import podnet.datastore.sqlite  # noqa: F401
    import podnet.ipam.allocator  # noqa: F401
    import podnet.ipam.usage  # noqa: F401


def start(node_netns: str, timeout: float = 10.0) -> subprocess.Popen:
    """Start the daemon in `node_netns` and wait until it answers. The caller keeps the
    Popen (its PID) and stops it with `stop()`."""
    p = subprocess.Popen(["ip", "netns", "exec", node_netns, sys.executable, "-m", "podnet.cni.daemon"],
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


def main() -> int:
    stop_ev = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_ev.set())
    signal.signal(signal.SIGINT, lambda *_: stop_ev.set())
    try:
        serve(stop_ev)
    except OSError as e:
        print(f"podnet-cni daemon: cannot listen: {e} (another daemon in this namespace?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PODNET_CNI_NO_DAEMON", "1")  # never call ourselves
    sys.exit(main())
