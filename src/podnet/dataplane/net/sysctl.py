"""Sysctls of a network namespace, written from a thread that joined it (no fork).

/proc/sys/net/* shows the namespace of the task that opens it, so a thread that did
setns(CLONE_NEWNET) writes the target namespace's values while the rest of the process,
and the machine's own namespace, are untouched.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Mapping, TypeVar

from podnet.setns import NETNS_DIR, enter

T = TypeVar("T")


def call_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run fn() in netns (a fresh thread that joins it), or here when netns is None."""
    if netns is None:
        return fn()
    box: dict[str, object] = {}

    def body() -> None:
        try:
            enter(netns)
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=body, name=f"netns-{netns}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def current_netns_name() -> str | None:
    """The name under /var/run/netns of the namespace this process runs in; None when it is
    unnamed (the machine's own namespace is)."""
    me = os.stat("/proc/self/ns/net")
    try:
        entries = list(os.scandir(NETNS_DIR))
    except OSError:
        return None
    for e in entries:
        try:
            st = os.stat(e.path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
            return e.name
    return None


def _path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def write_sysctl(path: str, value: str) -> None:
    """Write `value` to the sysctl file `path` (/proc/sys/...) unless it holds it already, as
    this thread's namespace sees it. Raises OSError."""
    # os-level calls: a text-mode open() costs ~3x as much (the CNI does this on every ADD)
    fd = os.open(path, os.O_RDWR)
    try:
        if os.read(fd, 64).strip() != value.encode():
            os.lseek(fd, 0, os.SEEK_SET)  # sysctls take writes at offset 0 only
            os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_sysctls(netns: str | None, values: Mapping[str, str | int]) -> None:
    """Set each key (dotted, `net.ipv4.ip_forward`) when it differs. Raises OSError."""
    def body() -> None:
        for key, value in values.items():
            write_sysctl(_path(key), str(value))
    call_in_netns(netns, body)


def read_sysctl(netns: str | None, key: str) -> str:
    def body() -> str:
        with open(_path(key)) as fh:
            return fh.read().strip()
    return call_in_netns(netns, body)


NODE_SYSCTLS: dict[str, int] = {
    "net.ipv4.ip_forward": 1,
    "net.ipv6.conf.all.forwarding": 1,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
}
