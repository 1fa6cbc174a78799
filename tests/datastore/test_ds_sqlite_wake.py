"""The SQLite store's cross-process wake-up (datastore/sqlite_wake.py): another process's
commit wakes a watcher through the sentinel file and inotify, not at its next poll. The
polls are made a minute long here, so an event seen within seconds can only have come
through the wake-up. No root."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from podnet.api.objects import from_dict
from podnet.datastore import sqlite as sqlite_mod
from podnet.datastore import sqlite_wake
from podnet.datastore.sqlite import SqliteDatastore

WRITE = """
import sys
from podnet.api.objects import from_dict
from podnet.datastore.sqlite import SqliteDatastore
s = SqliteDatastore(sys.argv[1])
s.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sys.argv[2]}}))
s.close()
"""


@pytest.fixture
def slow_polls(monkeypatch):
    for name in ("POLL_INTERVAL", "IDLE_POLL_INTERVAL", "WOKEN_POLL_INTERVAL", "WOKEN_IDLE_POLL_INTERVAL"):
        monkeypatch.setattr(sqlite_mod, name, 60.0)


def watch_names(store: SqliteDatastore, start: int, stop: threading.Event) -> tuple[threading.Thread, list[str]]:
    seen: list[str] = []

    def run() -> None:
        for ev in store.watch(start, stop=stop):
            seen.append(ev.object.name)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, seen


def wait_for(cond, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_another_processes_commit_wakes_the_watcher(tmp_path, slow_polls):
    url = f"sqlite://{tmp_path / 'store.db'}"
    store = SqliteDatastore(url)
    stop = threading.Event()
    try:
        t, seen = watch_names(store, store.revision(), stop)
        assert wait_for(lambda: store._woken is not None)
        assert store._woken, "inotify is there on Linux: the watcher must have subscribed"
        time.sleep(0.2)   # the watcher is asleep now, for a minute unless woken
        for name in ("a", "b"):
            subprocess.run([sys.executable, "-c", WRITE, url, name], check=True, timeout=60)
            assert wait_for(lambda: name in seen), f"{name} not seen: the wake-up did not come"
        # another client of this very process: woken through the file as well
        other = SqliteDatastore(url)
        other.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}))
        other.close()
        assert wait_for(lambda: "c" in seen)
    finally:
        stop.set()
        store._wake()
        store.close()
    t.join(10)
    assert not t.is_alive()


def test_the_last_subscriber_ends_the_processes_waker(tmp_path):
    db = str(tmp_path / "store.db")
    wakers = lambda: [t for t in threading.enumerate() if t.name == f"sqlite-wake {db}-notify"]  # noqa: E731
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    before = fds()
    first, second = SqliteDatastore(f"sqlite://{db}"), SqliteDatastore(f"sqlite://{db}")
    assert first._poll_intervals() == (sqlite_mod.WOKEN_POLL_INTERVAL, sqlite_mod.WOKEN_IDLE_POLL_INTERVAL)
    second._poll_intervals()
    assert len(wakers()) == 1   # one per process and store, however many clients
    first.close()
    assert len(wakers()) == 1
    second.close()
    assert wait_for(lambda: not wakers(), 5)
    assert wait_for(lambda: fds() <= before, 5), "the waker's inotify and pipe descriptors leaked"


def test_without_inotify_the_watcher_polls(tmp_path, monkeypatch):
    """Where no inotify instance can be had (fs.inotify.max_user_instances reached), the
    watchers keep the short polls and still see other processes' commits."""
    def no_inotify(path, libc):
        raise OSError(24, "inotify_init1: Too many open files")
    monkeypatch.setattr(sqlite_wake, "_Waker", no_inotify)
    url = f"sqlite://{tmp_path / 'store.db'}"
    store = SqliteDatastore(url)
    stop = threading.Event()
    try:
        assert store._poll_intervals() == (sqlite_mod.POLL_INTERVAL, sqlite_mod.IDLE_POLL_INTERVAL)
        t, seen = watch_names(store, store.revision(), stop)
        subprocess.run([sys.executable, "-c", WRITE, url, "polled"], check=True, timeout=60)
        assert wait_for(lambda: "polled" in seen)
    finally:
        stop.set()
        store.close()
    t.join(10)
