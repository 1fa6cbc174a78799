"""Who is at the other end of a unix socket: the one check every root-only listener of
podnet makes before it reads a byte (the CNI daemon, the agent's flow socket)."""
from __future__ import annotations

import socket
import sys


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected unix socket, as the kernel
    recorded it at connect() time (SO_PEERCRED: pid, uid, gid as three ints)."""
    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[4:8], sys.byteorder)
