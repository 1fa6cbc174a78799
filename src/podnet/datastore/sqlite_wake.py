"""Cross-process wake-up for the SQLite store's watchers (issue 22, Datastore).

A commit is visible to other processes only through the file, and SQLite has no way to
tell them: watchers poll `PRAGMA data_version`, so another process's write waited for the
next poll (10 ms, 30 ms when idle). Now every commit, once done, touches a sentinel file
next to the store (`<db>-notify`, its mtime), and each process that watches the store
keeps ONE inotify watch on that file (a daemon thread blocked in select, no CPU while
nothing is written) that wakes every watcher of that process at once.

Why a sentinel and not the WAL file itself: the WAL is written before the commit is
complete (and its index lives in the mmap'ed -shm, which inotify does not see), so a
watcher woken by a WAL write could look before the commit is visible and sleep again.
The touch comes after the commit returned.

When inotify is not there (another OS, the per-user instance limit of
fs.inotify.max_user_instances reached, a file system without it), `subscribe` says so and
the watchers keep polling at their usual pace: nothing depends on the wake-up but latency.
Writers that are not podnet (a person with the sqlite3 shell) are seen at the next poll.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import threading
import time
import weakref
from typing import Callable

log = logging.getLogger(__name__)

IN_ATTRIB, IN_MODIFY = 0x4, 0x2
MIN_GAP = 0.001   # s between two wake-ups of one process: a write burst costs <= 1,000 wakes/s

_libc: ctypes.CDLL | None = None


def sentinel(db_path: str) -> str:
    return db_path + "-notify"


def touch(path: str) -> None:
    """After a commit to the store whose sentinel is `path`: its watchers, in every
    process, wake now. Best effort (the poll still finds the commit)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        _create(path)
    except OSError:
        pass


def _create(path: str) -> None:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    except OSError:
        pass


class _Waker:
    """One per process and sentinel: calls every subscriber after each touch."""

    def __init__(self, path: str, libc: ctypes.CDLL):
        self.subscribers: list[weakref.WeakMethod[Callable[[], None]]] = []
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1: " + os.strerror(ctypes.get_errno()))
        if libc.inotify_add_watch(self.fd, os.fsencode(path), IN_ATTRIB | IN_MODIFY) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, "inotify_add_watch: " + os.strerror(err))
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"sqlite-wake {path}")
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.fd, self.stop_r], [], [])
                if self.stop_r in ready:
                    return
                try:
                    while os.read(self.fd, 65536):   # every queued event: one wake for all
                        pass
                except BlockingIOError:
                    pass
                for ref in list(self.subscribers):
                    fn = ref()
                    if fn is not None:
                        fn()
                time.sleep(MIN_GAP)
        finally:
            for fd in (self.fd, self.stop_r):
                os.close(fd)

    def close(self) -> None:
        os.write(self.stop_w, b"x")
        os.close(self.stop_w)


_WAKERS: dict[tuple[int, str], _Waker] = {}
_LOCK = threading.Lock()


def subscribe(db_path: str, wake: Callable[[], None]) -> bool:
    """Call `wake` (a bound method: held weakly) after every commit any process makes to
    the store at `db_path`. False when this process cannot watch it (then poll as before)."""
    global _libc
    path = sentinel(db_path)
    key = (os.getpid(), path)   # a forked child has its own wakers: threads do not fork
    with _LOCK:
        waker = _WAKERS.get(key)
        if waker is None:
            try:
                if _libc is None:
                    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
                _create(path)
                waker = _WAKERS[key] = _Waker(path, _libc)
            except (OSError, AttributeError) as e:   # AttributeError: a libc without inotify
                log.debug("%s: no inotify wake-up, watchers poll: %s", db_path, e)
                return False
        waker.subscribers.append(weakref.WeakMethod(wake))
    return True


def unsubscribe(db_path: str, wake: Callable[[], None]) -> None:
    """`wake` is called no more; the last subscriber of a process ends its waker."""
    key = (os.getpid(), sentinel(db_path))
    with _LOCK:
        waker = _WAKERS.get(key)
        if waker is None:
            return
        waker.subscribers = [r for r in waker.subscribers if r() is not None and r() != wake]
        if not waker.subscribers:
            del _WAKERS[key]
            waker.close()
