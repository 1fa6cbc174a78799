"""The embedded datastore: one SQLite file in WAL mode, shared by many processes.

Why this is safe across processes (and across network namespaces, which share the
filesystem): every write is one `BEGIN IMMEDIATE` transaction, so SQLite's file lock
serialises writers machine-wide; the revision counter, the object row and the event
row change together or not at all, and compare-and-swap is checked inside that lock.
Readers never block writers (WAL). Watchers check `PRAGMA data_version`, which changes
only when another connection committed, and then read new rows of the `events` table
by its integer primary key: a cheap indexed query. They wake when a commit is made: one
through this same client wakes them at once (a condition they sleep on), one by another
client or process through the sentinel file every commit touches and one inotify watch
per process (`sqlite_wake.py`). Where inotify cannot be had they poll instead, every
10 ms (30 ms once the store has been quiet for 2 s); with it, the poll stays only as a
safety net (every 0.1 s, 1 s when quiet).

Events are auto-compacted (older than `retain_seconds`, or beyond the last
`retain_events`) so the file does not grow forever; the compaction floor is kept in
`meta`, and a watcher that starts (or falls) below it gets `Compacted`.
"""
from __future__ import annotations

import builtins
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

from podnet.api.objects import Resource
from podnet.api.selector import LabelSelector
from podnet.api.objects import from_dict
from podnet.datastore.common import (decode, encode, norm_namespace, object_key, prepare_create,
                                     prepare_update, selected, stamp)
from podnet.datastore.decoding import decode_object, placeholder, report, split_key
from podnet.datastore import sqlite_rows as sql
from podnet.datastore import sqlite_wake
from podnet.datastore.interface import (AlreadyExists, BadEntry, Compacted,
                                        DatastoreError, Event, ListResult, NotFound, Undecodable,
                                        Unavailable)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
POLL_INTERVAL = 0.01       # while the store is busy
IDLE_POLL_INTERVAL = 0.03  # after IDLE_AFTER seconds without a change: a third of the wakeups
IDLE_AFTER = 2.0
WOKEN_POLL_INTERVAL, WOKEN_IDLE_POLL_INTERVAL = 0.1, 1.0   # with the inotify wake-up
AUTO_COMPACT_EVERY = 1000  # revisions between auto-compaction checks


def sqlite_path(url: str) -> str:
    """`sqlite:///abs/path.db` -> /abs/path.db; `sqlite://rel.db` -> rel.db."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise DatastoreError(f"not a sqlite URL: {url!r}")
    path = parts.netloc + parts.path
    if not path:
        raise DatastoreError(f"sqlite URL {url!r} has no file path (use sqlite:///abs/path.db)")
    return path


class SqliteDatastore:
    def __init__(self, url: str, *, retain_events: int = 100_000,
                 retain_seconds: float = 600.0) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.retain_events = retain_events
        self.retain_seconds = retain_seconds
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._generation = 0  # disconnect() bumps it; older connections are dropped
        self._commits = 0     # commits this client knows of (its own, others' by inotify)
        self._committed = threading.Condition()
        self._woken: bool | None = None   # inotify wake-up subscribed (None: not yet asked)
        self._sentinel = sqlite_wake.sentinel(self.path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        if not self._has_schema():
            # Short-lived processes (the CNI plugin) open the store often: only the first
            # open takes the write lock to create the tables.
            self._write(lambda c: c.executescript("BEGIN IMMEDIATE;" + sql.SCHEMA + "COMMIT;"),
                        explicit=True)

    def _has_schema(self) -> bool:
        try:
            return self._conn().execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()[0] == 1 and self._conn().execute(
                "SELECT count(*) FROM meta").fetchone()[0] >= 2
        except sqlite3.Error:
            return False

    # ---- connections ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against process crashes in WAL mode; only an OS crash
            # can lose the last commits, which is the trade etcd's default makes too.
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise Unavailable(f"cannot open SQLite datastore {self.path}: {e}") from e
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise DatastoreError(f"datastore {self.url} is closed")
        if self._pid != os.getpid():
            # A forked child must not use its parent's connections.
            self._local = threading.local()
            self._conns = []
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != self._generation:
            self._drop(conn)  # in the thread that owns it: no other thread is using it
            conn = None
        if conn is None:
            self._local.generation = self._generation
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self, conn: sqlite3.Connection) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def disconnect(self) -> None:
        """Drop every connection of this client, as when its file handles are lost: each
        thread opens a fresh one on its next call, and a running watch ends with
        `Unavailable`, so its caller resumes from the last revision it saw."""
        with self._lock:
            self._generation += 1

    def _write(self, fn: Callable[[sqlite3.Connection], T], explicit: bool = False) -> T:
        conn = self._conn()
        try:
            if explicit:
                result = fn(conn)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            self._wake()
            sqlite_wake.touch(self._sentinel)
            return result
        except sqlite3.Error as e:
            raise Unavailable(f"SQLite datastore {self.path}: {e}") from e

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise Unavailable(f"SQLite datastore {self.path}: {e}") from e

    # ---- reads ----------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Resource:
        ns = norm_namespace(kind, namespace)
        row = sql.stored(self._conn(), kind, ns, name)
        if row is None:
            raise NotFound(f"{kind} {ns + '/' if ns else ''}{name} not found")
        return from_dict(decode_object(kind, ns, name, row[0], row[1]))

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ListResult:
        def run(c: sqlite3.Connection) -> tuple[list[Any], int]:
            if namespace is None:
                rows = c.execute(sql.SELECT + "WHERE kind=? ORDER BY namespace, name",
                                 (kind,)).fetchall()
            else:
                rows = c.execute(sql.SELECT + "WHERE kind=? AND namespace=? ORDER BY name",
                                 (kind, norm_namespace(kind, namespace))).fetchall()
            return rows, sql.meta(c, "revision")
        rows, rev = self._read(run)
        items: list[Resource] = []
        skipped: list[BadEntry] = []
        for ns, name, value, mod_rev in rows:
            try:
                obj = from_dict(decode_object(kind, ns, name, value, mod_rev))
            except Undecodable as e:
                report(e.entry, f"{self.url}: list {kind}")
                skipped.append(e.entry)
                continue
            if selected(obj, selector):
                items.append(obj)
        return ListResult(items, rev, tuple(skipped))

    def check(self, kind: str | None = None) -> builtins.list[BadEntry]:  # list: the method
        sql = "SELECT kind, namespace, name, CAST(value AS BLOB), mod_rev FROM objects"
        rows = self._read(lambda c: c.execute(
            sql + (" WHERE kind=?" if kind else "") + " ORDER BY kind, namespace, name",
            (kind,) if kind else ()).fetchall())
        bad: list[BadEntry] = []
        for k, ns, name, value, mod_rev in rows:
            try:
                decode_object(k, ns, name, value, mod_rev)
            except Undecodable as e:
                bad.append(e.entry)
        return bad

    def revision(self) -> int:
        return sql.meta(self._conn(), "revision")

    # ---- writes ---------------------------------------------------------------------
    def create(self, obj: Resource) -> Resource:
        kind, ns, name = object_key(obj)
        d = prepare_create(obj)

        def run(c: sqlite3.Connection) -> Resource:
            if sql.stored(c, kind, ns, name) is not None:
                raise AlreadyExists(f"{kind} {ns + '/' if ns else ''}{name} already exists")
            rev = self._bump(c)
            value = encode(stamp(d, rev))
            c.execute("INSERT INTO objects VALUES (?,?,?,?,?,?)", (kind, ns, name, value, rev, rev))
            self._event(c, rev, "ADDED", kind, ns, name, value)
            return decode(value)
        return self._write(run)

    def update(self, obj: Resource, revision: int | None = None) -> Resource:
        kind, ns, name = object_key(obj)
        want = obj.resource_version if revision is None else revision

        def run(c: sqlite3.Connection) -> Resource:
            old_value = sql.current(c, kind, ns, name, want)
            rev = self._bump(c)
            value = encode(stamp(prepare_update(obj, sql.loads_or_empty(old_value)), rev))
            c.execute("UPDATE objects SET value=?, mod_rev=? WHERE kind=? AND namespace=? AND name=?",
                      (value, rev, kind, ns, name))
            self._event(c, rev, "MODIFIED", kind, ns, name, value)
            return decode(value)
        return self._write(run)

    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None) -> Resource:
        ns = norm_namespace(kind, namespace)

        def run(c: sqlite3.Connection) -> Resource:
            old_value = sql.current(c, kind, ns, name, revision)
            rev = self._bump(c)
            try:
                old = decode_object(kind, ns, name, old_value, rev)
            except Undecodable:  # deleting a bad entry is how it gets repaired
                old = placeholder(kind, ns, name, rev)
            value = encode(stamp(old, rev))
            c.execute("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, ns, name))
            self._event(c, rev, "DELETED", kind, ns, name, value)
            return decode(value)
        return self._write(run)

    def remove(self, key: str, revision: int | None = None) -> None:
        try:
            kind, ns, name = split_key(key)
        except ValueError as e:
            raise NotFound(str(e)) from None
        self.delete(kind, ns, name, revision)

    def _bump(self, c: sqlite3.Connection) -> int:
        rev = sql.meta(c, "revision") + 1
        c.execute("UPDATE meta SET value=? WHERE key='revision'", (rev,))
        if rev % AUTO_COMPACT_EVERY == 0:
            self._auto_compact(c, rev)
        return rev

    def _event(self, c: sqlite3.Connection, rev: int, type_: str, kind: str, ns: str,
               name: str, value: str) -> None:
        c.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?)",
                  (rev, type_, kind, ns, name, value, time.time()))

    # ---- compaction -----------------------------------------------------------------
    def compact(self, revision: int) -> None:
        self._write(lambda c: sql.compact_to(c, min(revision, sql.meta(c, "revision"))))

    def _auto_compact(self, c: sqlite3.Connection, rev: int) -> None:
        floor = rev - self.retain_events
        row = c.execute("SELECT max(rev) FROM events WHERE ts < ?",
                        (time.time() - self.retain_seconds,)).fetchone()
        if row[0] is not None:
            floor = max(floor, int(row[0]))
        if floor > sql.meta(c, "compacted"):
            sql.compact_to(c, floor)

    # ---- watch ----------------------------------------------------------------------
    def watch(self, from_revision: int, kinds: tuple[str, ...] | None = None,
              stop: Any = None) -> Iterator[Event]:
        """A generator on its own connection, so it can run in any one thread while
        other threads use the store."""
        conn = self._connect()
        try:
            yield from self._watch(conn, from_revision, kinds, stop)
        finally:
            conn.close()

    def _wake(self) -> None:
        with self._committed:
            self._commits += 1
            self._committed.notify_all()

    def _poll_intervals(self) -> tuple[float, float]:
        """(busy, idle) poll intervals: long with the inotify wake-up, short without."""
        with self._lock:
            if self._woken is None:
                self._woken = sqlite_wake.subscribe(self.path, self._wake)
        if self._woken:
            return WOKEN_POLL_INTERVAL, WOKEN_IDLE_POLL_INTERVAL
        return POLL_INTERVAL, IDLE_POLL_INTERVAL

    def _watch(self, conn: sqlite3.Connection, last: int, kinds: tuple[str, ...] | None,
               stop: Any) -> Iterator[Event]:
        busy, quiet = self._poll_intervals()
        version = None
        changed_at = time.monotonic()
        generation = self._generation
        while not (stop is not None and stop.is_set()):
            if self._closed:
                return
            if self._generation != generation:
                raise Unavailable(f"SQLite datastore {self.path}: connection dropped at revision {last}")
            commits = self._commits   # read before data_version: a commit after it wakes the sleep
            try:
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    idle = time.monotonic() - changed_at > IDLE_AFTER
                    self._sleep(commits, quiet if idle else busy)
                    continue
                changed_at = time.monotonic()
                rows, floor, top = sql.read_events(conn, last, kinds)
            except sqlite3.Error as e:
                raise Unavailable(f"SQLite datastore {self.path}: {e}") from e
            if last < floor:
                raise Compacted(last, floor)
            caught_up = len(rows) < sql.WATCH_BATCH
            if caught_up:
                version = now  # caught up at this data_version
            for rev, type_, kind, ns, name, value in rows:
                last = rev
                yield _watch_event(self.url, rev, type_, kind, ns, name, value)
                if stop is not None and stop.is_set():
                    return
            if caught_up:
                last = max(last, top)  # the other kinds' events up to here are not ours

    def _sleep(self, commits: int, seconds: float) -> None:
        """Until this client commits again (after `commits`), or the poll interval has
        passed (another process's commit, a stop, a close)."""
        with self._committed:
            if self._commits == commits:
                self._committed.wait(seconds)

    def close(self) -> None:
        self._closed = True
        if self._woken:
            sqlite_wake.unsubscribe(self.path, self._wake)
        with self._committed:   # its watchers end now, not at their next poll
            self._committed.notify_all()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass


def _watch_event(url: str, rev: int, type_: str, kind: str, ns: str, name: str, value: bytes) -> Event:
    """A watch event; one whose value does not decode says the object is gone (as a list
    would skip it), with what its key tells."""
    try:
        return Event(type_, rev, from_dict(decode_object(kind, ns, name, value, rev)))
    except Undecodable as e:
        report(e.entry, f"{url}: watch {kind}")
        return Event("DELETED", rev, from_dict(placeholder(kind, ns, name, rev)))

