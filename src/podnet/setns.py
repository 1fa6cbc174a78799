"""setns(2) for threads, the one helper every part uses to work inside a network namespace
without forking: the datastore's sockets into a lab netns, the CNI's netlink sockets and
/proc/sys files of a pod, the dataplane's sysctls. Imports nothing of podnet (the bottom of
the layers).

setns(CLONE_NEWNET) moves the calling *thread* only, and a socket or a /proc/sys/net file
keeps the namespace it was opened in for its whole life. So there are two ways to use it:
`enter` moves a thread you own into the namespace for good (a helper thread that dies
after its work), `switched` moves this thread in and back again around a block.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from typing import Iterator

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_switch_lock = threading.Lock()  # one thread at a time is away from home


class NetnsError(OSError):
    pass


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """The system call (os.setns from Python 3.12 on). Raises OSError."""
    call = getattr(os, "setns", None)
    if call is not None:
        call(fd, nstype)
        return
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_path(netns: str) -> str:
    """A name as `ip netns add` makes it (under /var/run/netns), or a path as is."""
    return netns if "/" in netns else os.path.join(NETNS_DIR, netns)


def enter(netns: str) -> None:
    """Move the CALLING THREAD into `netns` (a name or a path) for good: use a thread you
    own. Raises NetnsError."""
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(e.errno, f"netns {netns}: {e.strerror}") from None
    try:
        setns(fd)
    except OSError as e:
        raise NetnsError(e.errno, f"setns into {netns}: {e.strerror}") from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def switched(netns: str) -> Iterator[None]:
    """This thread inside `netns` (a name or a path) for the block, then home again. What
    the block opens keeps the namespace. Should the way home fail (it cannot), the process
    exits rather than go on in the wrong namespace. Raises OSError when `netns` cannot be
    entered."""
    target = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _switch_lock:
            try:
                setns(target)
            except OSError as e:
                raise OSError(e.errno, f"setns({netns}): {e.strerror}") from None
            try:
                yield
            finally:
                try:
                    setns(home)
                except OSError:
                    os._exit(70)
    finally:
        os.close(target)
        os.close(home)
