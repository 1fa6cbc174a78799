"""The plugin binaries' fast path: hand the call to the node's podnet CNI daemon.

A runtime execs a fresh process per call, and a Python process that imports the store,
the allocator and the object model spends most of its life importing. So the binaries
first try the daemon (`podnet.cni.daemon`), which has all that loaded: connect, send
(binary, environment, stdin), copy back stdout/stderr/exit code. The daemon listens on
an *abstract* unix socket, which the kernel scopes to the network namespace: a plugin
running in node N's namespace reaches node N's daemon and no other, with no config.
Only builtin modules are imported here, and nothing from podnet: the thin launchers
(bin/) load this file alone, as the top-level module `client`. No daemon -> None, and
the caller runs the call in-process; a daemon that dies mid-call -> CNI error 11.
"""
import os
import sys

SOCKET_NAME = b"\0podnet-cni"


def _read_all(s) -> bytes:
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def encode_request(binary: str, env: dict, stdin: bytes) -> bytes:
    head = [binary.encode()] + [f"{k}={v}".encode() for k, v in env.items()
                                 if k.startswith(("CNI_", "PODNET_")) or k in ("PATH", "NODENAME")]
    return b"\0".join(head) + b"\0\0" + stdin


def decode_request(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, stdin = data.partition(b"\0\0")
    parts = head.split(b"\0")
    env = {}
    for p in parts[1:]:
        k, _, v = p.decode(errors="replace").partition("=")
        env[k] = v
    return parts[0].decode(), env, stdin


def try_daemon(binary: str) -> int | None:
    if os.environ.get("PODNET_CNI_NO_DAEMON") == "1":
        return None
    import _socket
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(SOCKET_NAME)
    except OSError:
        s.close()
        return None
    try:
        stdin = sys.stdin.buffer.read()
        s.sendall(encode_request(binary, dict(os.environ), stdin))
        s.shutdown(_socket.SHUT_WR)
        reply = _read_all(s)
    except OSError as e:
        reply = b""
        err = str(e)
    else:
        err = "connection closed"
    finally:
        s.close()
    if len(reply) < 5:
        sys.stdout.write('{"cniVersion":"1.1.0","code":11,"msg":"the podnet CNI daemon failed '
                         'mid-call; try again","details":%s}\n' % _q(err))
        return 1
    n = int.from_bytes(reply[1:5], "big")
    sys.stdout.buffer.write(reply[5:5 + n])
    sys.stderr.buffer.write(reply[5 + n:])
    return reply[0]


def thin_main(binary: str, launcher: str) -> int:
    """The thin launchers' body (bin/podnet-cni, bin/podnet-ipam, run as `python -I -S`):
    the daemon, else exec the full plugin of the same name that follows the launcher in
    CNI_PATH (stdin is still unread, so it gets the call intact)."""
    rc = try_daemon(binary)
    if rc is not None:
        # Nothing to tear down: skip the interpreter's finalization (~0.5 ms).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    name = os.path.basename(launcher)
    full = find_full(name, launcher, os.environ.get("CNI_PATH", ""))
    if full is None:
        msg = (f"the podnet CNI daemon is not reachable in this network namespace and no "
               f"full {name} follows {launcher} in CNI_PATH")
        sys.stdout.write('{"cniVersion":"1.1.0","code":11,"msg":%s,"details":%s}\n'
                         % (_q(msg), _q("CNI_PATH=" + os.environ.get("CNI_PATH", ""))))
        return 1
    os.execv(full, [full] + sys.argv[1:])
    return 1  # not reached


def find_full(name: str, launcher: str, cni_path: str) -> str | None:
    """The first executable `name` in the CNI_PATH dirs after the launcher's own dir (all
    of them when the launcher is not on CNI_PATH), never the launcher itself: a copy of
    a launcher further on execs the one after it, so there is no loop."""
    dirs = [d for d in cni_path.split(":") if d]
    me = os.path.realpath(launcher)
    own = [i for i, d in enumerate(dirs) if os.path.realpath(os.path.join(d, name)) == me]
    for d in dirs[own[0] + 1:] if own else dirs:
        p = os.path.join(d, name)
        if os.path.realpath(p) != me and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_reply(rc: int, stdout: bytes, stderr: bytes) -> bytes:
    return bytes([rc & 0xFF]) + len(stdout).to_bytes(4, "big") + stdout + stderr
