"""SQLite-specific behaviour: URLs, persistence, auto-compaction, schema."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from podnet.datastore.etcd import parse_etcd_url
from podnet.datastore.interface import Compacted, DatastoreError, open_datastore
from podnet.datastore.sqlite import SqliteDatastore, sqlite_path
from builders import make_pod


def pod(name):
    return make_pod("default", name, [])


def test_sqlite_urls():
    assert sqlite_path("sqlite:///var/lib/podnet/x.db") == "/var/lib/podnet/x.db"
    assert sqlite_path("sqlite://rel/x.db") == "rel/x.db"
    with pytest.raises(DatastoreError, match="no file path"):
        sqlite_path("sqlite://")


def test_etcd_urls():
    assert parse_etcd_url("etcd://198.18.0.11:2379/lab?netns=pn-lab-n1") == {
        "host": "198.18.0.11", "port": 2379, "prefix": "/lab", "netns": "pn-lab-n1", "unix": None,
        "tls": None}
    assert parse_etcd_url("etcd://h")["prefix"] == "/podnet"
    assert parse_etcd_url("etcd://[fd00::1]:2379")["host"] == "fd00::1"
    u = parse_etcd_url("etcd+unix:///run/pn/etcd.sock:0/pfx")
    assert (u["unix"], u["prefix"]) == ("/run/pn/etcd.sock:0", "/pfx")
    assert parse_etcd_url("etcd+unix:///run/pn/etcd.sock:0")["prefix"] == "/podnet"
    with pytest.raises(DatastoreError, match="NAME:PORT"):
        parse_etcd_url("etcd+unix:///run/pn/etcd.sock")
    with pytest.raises(DatastoreError, match="no host"):
        parse_etcd_url("etcd:///x")


def test_open_datastore_rejects_unknown_scheme():
    with pytest.raises(DatastoreError, match="unknown datastore URL"):
        open_datastore("redis://x")


def test_state_survives_reopen_and_wal_mode(tmp_path):
    url = f"sqlite://{tmp_path}/s.db"
    s = open_datastore(url)
    a = s.create(pod("a"))
    s.close()
    s2 = open_datastore(url)
    assert s2.get("Pod", "default", "a") == a
    assert s2.revision() == a.resource_version
    s2.close()
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_auto_compaction_keeps_the_last_events(tmp_path, monkeypatch):
    monkeypatch.setattr("podnet.datastore.sqlite.AUTO_COMPACT_EVERY", 10)
    s = SqliteDatastore(f"sqlite://{tmp_path}/s.db", retain_events=25)
    for i in range(100):
        s.create(pod(f"p{i}"))
    n = sqlite3.connect(tmp_path / "s.db").execute("SELECT count(*) FROM events").fetchone()[0]
    assert 25 <= n <= 35
    with pytest.raises(Compacted):
        next(iter(s.watch(0)))
    evs = []
    stop = threading.Event()
    for ev in s.watch(100 - 25, stop=stop):
        evs.append(ev.object.name)
        if len(evs) == 25:
            break
    assert evs == [f"p{i}" for i in range(75, 100)]
    s.close()


def test_auto_compaction_by_age(tmp_path, monkeypatch):
    monkeypatch.setattr("podnet.datastore.sqlite.AUTO_COMPACT_EVERY", 10)
    s = SqliteDatastore(f"sqlite://{tmp_path}/s.db", retain_seconds=0)
    for i in range(10):
        s.create(pod(f"p{i}"))
    n = sqlite3.connect(tmp_path / "s.db").execute("SELECT count(*) FROM events").fetchone()[0]
    assert n <= 1
    s.close()


def test_closed_store_errors_clearly(tmp_path):
    s = open_datastore(f"sqlite://{tmp_path}/s.db")
    s.close()
    with pytest.raises(DatastoreError, match="closed"):
        s.get("Pod", "default", "a")


def test_a_commit_of_the_same_client_wakes_its_watchers_and_others_poll(tmp_path, monkeypatch):
    """A watcher sleeps between polls of data_version; a write through the same client
    wakes it at once, another client's write (another process's) is seen at the next poll."""
    import time

    from podnet.datastore import sqlite as sqlite_mod
    monkeypatch.setattr(sqlite_mod, "POLL_INTERVAL", 1.5)
    monkeypatch.setattr(sqlite_mod, "IDLE_POLL_INTERVAL", 1.5)
    url = f"sqlite://{tmp_path / 's.db'}"
    store, other = SqliteDatastore(url), SqliteDatastore(url)
    stop, seen = threading.Event(), {}

    def run():
        for ev in store.watch(store.revision(), ("Pod",), stop=stop):
            seen[ev.object.name] = time.monotonic()
    t = threading.Thread(target=run)
    t.start()
    try:
        time.sleep(0.3)   # the watcher is asleep in its poll
        t0 = time.monotonic()
        store.create(pod("same"))
        while "same" not in seen and time.monotonic() - t0 < 5:
            time.sleep(0.005)
        assert seen["same"] - t0 < 0.5, "a commit of the same client did not wake its watcher"
        time.sleep(0.3)
        t0 = time.monotonic()
        other.create(pod("other"))
        while "other" not in seen and time.monotonic() - t0 < 5:
            time.sleep(0.005)
        assert "other" in seen, "another client's commit was never seen"
    finally:
        stop.set()
        store.close()   # wakes the sleeping watcher: it ends now
        t.join(1.0)
        assert not t.is_alive()
        other.close()
