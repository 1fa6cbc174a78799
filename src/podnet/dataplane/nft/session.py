"""A long-lived nftables session in a network namespace: the same `apply(script)` as
`NftRunner`, without paying `nft` start-up and cache fill on every sync.

One helper process per session (`ip netns exec NS python -m podnet.dataplane.nft.session`)
holds a libnftables context and applies each script as ONE transaction, like `nft -f`.
A partial sync of a loaded 10k-service table takes ~1 ms this way instead of ~10-40 ms
through the CLI. The helper's PID is kept; `close()` ends exactly that process. If the
helper dies, the next `apply` starts a new one once.

A script made only of what `fastpath` translates (a service proxy's partial sync: map
elements, chains, the draw rule) goes to the helper as a raw netlink batch instead: nft
1.0.6 would list every chain of the table before applying it (fastpath.py says why).
`fast=False` keeps every script on libnftables.

Framing on the pipes: request `<len>\\n<script bytes>` (libnftables) or `n<len>\\n<netlink
batch>`; reply `<rc> <len>\\n<error bytes>` (for a batch: `<seq> <errno>` lines).
"""
from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import subprocess
import sys
from typing import IO

from podnet.dataplane.nft import fastpath

from podnet.dataplane.net.netns import netns_argv
from podnet.dataplane.nft.runner import NftError


class NftSession:
    def __init__(self, netns: str | None, fast: bool = True):
        self.netns = netns
        self.fast = fast
        self.applied = 0
        self.applied_fast = 0  # of `applied`: as a raw netlink batch (fastpath)
        self._seq = 1  # netlink sequence numbers: unique across this session's batches
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _start(self) -> subprocess.Popen[bytes]:
        argv = netns_argv(self.netns, [sys.executable, "-m", "podnet.dataplane.nft.session"])
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self._proc

    def apply(self, script: str) -> None:
        if not script.strip():
            return
        fast = fastpath.batch(script, self._seq) if self.fast else None
        data = script.encode() if fast is None else fast[0]
        if fast is not None:
            self._seq = (max(fastpath.seqs(data)) + 1) % (1 << 30) or 1
        for attempt in (0, 1):
            proc = self._proc if self._proc and self._proc.poll() is None else self._start()
            try:
                rc, err = _request(proc, data, raw=fast is not None)
                break
            except (BrokenPipeError, EOFError, ValueError) as e:
                self.close()
                if attempt:
                    raise NftError(f"nft session in netns {self.netns} died: {e}") from e
        if rc != 0:
            if fast is not None:
                err = _batch_error(err, fast[1])
            raise NftError(f"nft transaction failed in netns {self.netns}: {err.strip()}")
        self.applied += 1
        self.applied_fast += fast is not None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "NftSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _batch_error(reply: str, what: dict[int, str]) -> str:
    """`<seq> <errno>` lines of a refused batch, as nft would say it: the error and the
    statement (a failed commit names the batch begin, not a statement)."""
    out = []
    for line in reply.splitlines():
        if line.strip():
            seq, err = (int(x) for x in line.split())
            out.append(f"{os.strerror(err)}: {what.get(seq, 'the batch')}")
    return "; ".join(out) or "refused"


def _request(proc: subprocess.Popen[bytes], data: bytes, raw: bool = False) -> tuple[int, str]:
    assert proc.stdin and proc.stdout
    proc.stdin.write((b"n%d\n" if raw else b"%d\n") % len(data) + data)
    proc.stdin.flush()
    head = proc.stdout.readline()
    if not head:
        raise EOFError("no reply")
    rc, n = (int(x) for x in head.split())
    return rc, _read_exact(proc.stdout, n).decode(errors="replace")


def _read_exact(f: IO[bytes], n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            raise EOFError("short read")
        buf += chunk
    return buf


# ---- the helper process ------------------------------------------------------------------
def _serve() -> None:
    lib = ctypes.CDLL("libnftables.so.1")
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    ctx = lib.nft_ctx_new(0)
    lib.nft_ctx_buffer_error(ctx)
    lib.nft_ctx_buffer_output(ctx)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    nl: socket.socket | None = None
    while True:
        head = inp.readline()
        if not head:
            return
        if head.startswith(b"n"):
            if nl is None:
                # one socket for the helper's life, as libnftables keeps its own: closing a
                # netfilter netlink socket after a batch that deleted something waits for
                # the kernel's deferred frees (an RCU grace period, 8-21 ms measured)
                nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
                nl.bind((0, 0))
                nl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            rc, err = _send_batch(nl, _read_exact(inp, int(head[1:])))
        else:
            script = _read_exact(inp, int(head))
            rc = lib.nft_run_cmd_from_buffer(ctx, script)
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"") if rc else b""
        out.write(b"%d %d\n" % (0 if rc == 0 else 1, len(err)) + err)
        out.flush()


def _send_batch(sock: socket.socket, data: bytes) -> tuple[int, bytes]:
    """Send one netlink batch and wait for its verdict: an ack for every message (the
    kernel sends them after the commit), or any error (then the kernel aborted the whole
    batch; after a failed commit it drops the acks and sends one error for the batch).
    Replies to earlier batches (late ones after a failure) carry other sequence numbers
    and are skipped."""
    want = set(fastpath.acked(data))
    ours = set(fastpath.seqs(data))
    failed: list[tuple[int, int]] = []
    sock.send(data)
    while want:
        ready, _, _ = select.select([sock], [], [], 0.05 if failed else 30)
        if not ready:
            if not failed:
                failed.append((0, errno.ETIMEDOUT))
            break
        for seq, err in fastpath.errors(sock.recv(1 << 20)):
            if seq not in ours:
                continue
            want.discard(seq)
            if err:
                failed.append((seq, err))
    return (1 if failed else 0), "".join(f"{s} {e}\n" for s, e in failed).encode()


if __name__ == "__main__":
    _serve()
