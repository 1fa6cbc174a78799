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

Both ends check who is at the other one (SO_PEERCRED): the daemon serves root only (it
runs plugins and changes the kernel as root), and a binary talks only to a daemon that
runs as root, so a process that bound the name first (the name is free for anyone in
the namespace while no daemon runs) cannot answer for it: the call then runs in-process.
"""
import posix
import sys

TYPE_CHECKING = False  # typing is not imported at run time: the launcher's start-up counts
if TYPE_CHECKING:
    from typing import Callable

SOCKET_NAME = b"\0podnet-cni"


def _read_all(read: "Callable[[int], bytes]") -> bytes:
    chunks: list[bytes] = []
    while True:
        b = read(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[posix.write(fd, data):]


def encode_request(binary: str, env: dict[bytes, bytes], stdin: bytes) -> bytes:
    """`env` as bytes, as posix.environ holds it (no decoding on the launcher's clock), and
    all of it: a delegated IPAM plugin must get the same environment (SPEC.md §4)."""
    head = [binary.encode()] + [k + b"=" + v for k, v in env.items() if b"\0" not in k + v]
    return b"\0".join(head) + b"\0\0" + stdin


def decode_request(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Raises ValueError for anything encode_request cannot have made. Names and values
    are decoded as os.environ decodes them (undecodable bytes kept as surrogates)."""
    head, sep, stdin = data.partition(b"\0\0")
    if not sep:
        raise ValueError("the request ends before its environment does (no NUL NUL)")
    parts = head.split(b"\0")
    binary = parts[0].decode("ascii")  # UnicodeDecodeError is a ValueError
    if not binary.isidentifier():
        raise ValueError(f"invalid plugin name {binary!r}")
    env = {}
    for p in parts[1:]:
        k, eq, v = p.partition(b"=")
        if not eq or not k:
            raise ValueError(f"environment entry {p[:40]!r} is not NAME=VALUE")
        env[k.decode(errors="surrogateescape")] = v.decode(errors="surrogateescape")
    return binary, env, stdin


def peer_uid(sock) -> int:
    """podnet.peercred.peer_uid, repeated because this file imports nothing from podnet."""
    import _socket
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[4:8], sys.byteorder)


def try_daemon(binary: str) -> int | None:
    """The call through the daemon: its exit code, after copying its stdout and stderr
    to ours; None when no daemon listens here."""
    if posix.environ.get(b"PODNET_CNI_NO_DAEMON") == b"1":
        return None
    import _socket
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(SOCKET_NAME)
        uid = peer_uid(s)
    except OSError:
        s.close()
        return None
    if uid != 0:  # not our daemon: someone else holds the name
        s.close()
        _write_all(2, b"podnet-cni: ignoring a podnet-cni socket served by uid %d, not root; "
                   b"running the call in-process\n" % uid)
        return None
    err = "connection closed"
    try:
        stdin = _read_all(lambda n: posix.read(0, n))
        s.sendall(encode_request(binary, posix.environ, stdin))
        s.shutdown(_socket.SHUT_WR)
    except OSError as e:  # the daemon may have answered (a refusal) before reading it all
        err = str(e)
    try:
        reply = _read_all(s.recv)
    except OSError as e:
        reply = b""
        err = str(e)
    finally:
        s.close()
    if len(reply) < 5:
        _write_all(1, b'{"cniVersion":"1.1.0","code":11,"msg":"the podnet CNI daemon failed '
                   b'mid-call; try again","details":%s}\n' % _q(err).encode())
        return 1
    n = int.from_bytes(reply[1:5], "big")
    _write_all(1, reply[5:5 + n])
    _write_all(2, reply[5 + n:])
    return reply[0]


def thin_main(launcher: str) -> None:
    """The thin launcher's body (bin/podnet-cni, and bin/podnet-ipam, a link to it; run as
    `python -I -S`): the plugin is named by the launcher's own name. The daemon, else exec
    the full plugin of that name that follows the launcher in CNI_PATH (stdin is still
    unread then, so it gets the call intact). Never returns.

    This path imports `posix`, not `os`: `import os` (with _collections_abc, posixpath,
    stat) is ~1 ms of a ~7 ms interpreter start-up, on every call."""
    name = launcher.rpartition("/")[2]
    rc = try_daemon(name.removeprefix("podnet-"))
    if rc is not None:
        posix._exit(rc)  # nothing to flush or tear down: skip the interpreter's finalization
    import os
    full = find_full(name, launcher, os.environ.get("CNI_PATH", ""))
    if full is None:
        msg = (f"the podnet CNI daemon is not reachable in this network namespace and no "
               f"full {name} follows {launcher} in CNI_PATH")
        sys.stdout.write('{"cniVersion":"1.1.0","code":11,"msg":%s,"details":%s}\n'
                         % (_q(msg), _q("CNI_PATH=" + os.environ.get("CNI_PATH", ""))))
        sys.stdout.flush()
        posix._exit(1)
    os.execv(full, [full] + sys.argv[1:])


def find_full(name: str, launcher: str, cni_path: str) -> str | None:
    """The first executable `name` in the CNI_PATH dirs after the launcher's own dir (all
    of them when the launcher is not on CNI_PATH), never the launcher itself: a copy of
    a launcher further on execs the one after it, so there is no loop."""
    import os
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
