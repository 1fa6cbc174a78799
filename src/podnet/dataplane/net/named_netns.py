"""Named network namespaces made and removed in-process, as `ip netns add/del` does, without
starting `ip` (issue 22: two `ip` processes per pod were a third of the lab kubelet's CPU).

`ip netns add NAME` creates /var/run/netns/NAME, unshares a new network namespace and
bind-mounts it onto that file; `ip netns del` detaches the mount and unlinks the file.
Here a short-lived thread of our own unshares (CLONE_NEWNET moves only the calling
thread), bind-mounts /proc/thread-self/ns/net, brings the loopback up through a netlink
socket made there (a socket keeps its namespace) and ends: no thread of the process ever
goes home from the new namespace, and no other thread leaves its own.

`ip` also makes /var/run/netns a shared mount point the first time; when it is not one
yet (no netns ever made on this machine) this returns False and the caller uses `ip`.
"""
from __future__ import annotations

import ctypes
import os
import threading

from podnet.dataplane.net import rtnl
from podnet.setns import CLONE_NEWNET, NETNS_DIR

MS_BIND = 4096
MNT_DETACH = 2
LOOPBACK_INDEX = 1  # the first link of every new namespace

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def usable() -> bool:
    """Whether namespaces can be made here without `ip` (its one-time mount set-up done:
    the directory is a mount point of its own; a bind mount of the same file system, which
    os.path.ismount cannot tell, so it is looked up in the mount table)."""
    where = os.path.realpath(NETNS_DIR)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == where for line in f)
    except OSError:
        return False


def _make(path: str, errors: list[BaseException]) -> None:
    """The thread's body: it never leaves the new namespace (it ends instead)."""
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None),
               f"bind mount onto {path}")
        with rtnl.Rtnl() as nl:  # made in the new namespace
            nl.request(*rtnl.link_up(LOOPBACK_INDEX))
    except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
        errors.append(e)


def add(name: str) -> bool:
    """Create the named namespace with its loopback up. False when this machine needs
    `ip netns add` (see usable()); OSError when it cannot be made (the file is removed
    again). An existing name is an error (FileExistsError), as for `ip`."""
    if not usable():
        return False
    path = os.path.join(NETNS_DIR, name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    os.close(fd)
    errors: list[BaseException] = []
    t = threading.Thread(target=_make, args=(path, errors), name=f"netns-add-{name}", daemon=True)
    t.start()
    t.join()
    if errors:
        remove(name)
        raise errors[0]
    return True


def remove(name: str) -> None:
    """`ip netns del`: detach the mount (the namespace lives on while anything is in it)
    and remove the file; a missing one is not an error."""
    path = os.path.join(NETNS_DIR, name)
    _libc.umount2(path.encode(), MNT_DETACH)  # not mounted (half made): nothing to undo
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
