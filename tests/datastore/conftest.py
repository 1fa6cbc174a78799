"""Fixtures for the datastore conformance suite: one `backend` per datastore kind.

Every conformance test takes `backend` and runs unchanged against SQLite and a real
etcd server (started on a free loopback port with a temp data dir, stopped in teardown).
The etcd cases skip only when the etcd binary is missing, and say so.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable, Iterator

import pytest

from needs import missing

from podnet.datastore.interface import Datastore, open_datastore

ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")


class Backend:
    """A datastore under test: `open()` gives a fresh client, `disrupt()` breaks every
    client's connection (closes nothing of theirs) and brings the store back: etcd is
    restarted; SQLite, which has no server, is held locked by another process for a while
    and every client's connections are dropped (`SqliteDatastore.disconnect`)."""

    def __init__(self, name: str, url: str, disrupt: Callable[[list[Datastore]], None]):
        self.name = name
        self.url = url
        self._disrupt = disrupt
        self._opened: list[Datastore] = []

    def open(self) -> Datastore:
        store = open_datastore(self.url)
        self._opened.append(store)
        return store

    def disrupt(self) -> None:
        self._disrupt(self._opened)

    def compact(self, store: Datastore, revision: int) -> None:
        """Compact the store's events up to `revision`: the store's own verb, or, for the
        Kubernetes datastore, the store behind the API server (the API has no such verb)."""
        store.compact(revision)

    def close_all(self) -> None:
        for s in self._opened:
            s.close()


SQLITE_LOCK_SECONDS = 0.5
_HOLD_WRITE_LOCK = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def _sqlite_disrupt(path: str) -> Callable[[list[Datastore]], None]:
    def disrupt(opened: list[Datastore]) -> None:
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, path, str(SQLITE_LOCK_SECONDS)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            for store in opened:
                store.disconnect()  # type: ignore[attr-defined]
        finally:
            assert holder.wait(30) == 0
    return disrupt


def _sqlite_backend(tmp_path) -> Iterator[Backend]:
    path = f"{tmp_path}/store.db"
    b = Backend("sqlite", f"sqlite://{path}", _sqlite_disrupt(path))
    b.open()  # the file exists before anyone locks it
    yield b
    b.close_all()


def _etcd_backend(tmp_path) -> Iterator[Backend]:
    if not (os.path.exists(ETCD_BIN) or shutil.which("etcd")):
        missing(f"etcd binary not found at {ETCD_BIN} (install Debian's etcd-server)")
    from podnet.datastore.etcd_server import EtcdServer
    # tmpfs when there is one: etcd fsyncs every write, and the suite is about behaviour,
    # not disk speed (bench/ measures speed).
    base = tempfile.mkdtemp(prefix="pn-ds-etcd-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    server = EtcdServer(data_dir=os.path.join(base, "etcd"), binary=ETCD_BIN)
    server.start()
    try:
        b = Backend("etcd", f"etcd://{server.client_host}:{server.client_port}/podnet-test",
                    lambda _opened: server.restart())
        yield b
        b.close_all()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _kubernetes_backend(tmp_path) -> Iterator[Backend]:
    """The Kubernetes datastore through a real `podnet apiserver` process over SQLite;
    disrupt() kills and restarts the server (issue 15 §4). Needs nothing but Python, so it
    never skips: under CI=true it runs like the SQLite case."""
    from kube_server import KubeApiServer
    server = KubeApiServer(tmp_path)
    server.start()
    try:
        b = Backend("kubernetes", server.url, lambda _opened: server.restart())
        # The server's watch cache keeps its last events whatever the store compacted (as
        # kube-apiserver's does): a restart empties it, so the compaction shows as 410.
        b.compact = lambda _store, rev: (server.compact(rev), server.restart())  # type: ignore[method-assign]
        yield b
        b.close_all()
    finally:
        server.stop()


@pytest.fixture
def kube(tmp_path) -> Iterator[Any]:
    """A `podnet apiserver` process over a SQLite store of its own (kube_server.py)."""
    from kube_server import KubeApiServer
    server = KubeApiServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_MAKERS = {"sqlite": _sqlite_backend, "etcd": _etcd_backend, "kubernetes": _kubernetes_backend}


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd),
                        pytest.param("kubernetes", marks=pytest.mark.kubernetes)])
def backend(request, tmp_path) -> Iterator[Backend]:
    yield from _MAKERS[request.param](tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def store_backend(request, tmp_path) -> Iterator[Backend]:
    """The backends that are a store of their own (not an API in front of one): for what is
    written into a store's storage directly (poison entries)."""
    yield from _MAKERS[request.param](tmp_path)


@pytest.fixture
def etcd_backend(tmp_path) -> Iterator[Backend]:
    """For what only etcd has (keys of any shape): no SQLite variant to skip."""
    yield from _etcd_backend(tmp_path)


@pytest.fixture
def store(backend: Backend) -> Datastore:
    return backend.open()
