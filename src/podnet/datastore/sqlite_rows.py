"""The SQLite store's schema and its statements on rows, each a function of an open
connection (the transactions are sqlite.py's).
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from podnet.datastore.interface import Conflict, NotFound

WATCH_BATCH = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects(
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  value TEXT NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL,
  PRIMARY KEY(kind, namespace, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
  rev INTEGER PRIMARY KEY, type TEXT NOT NULL, kind TEXT NOT NULL,
  namespace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('revision', 0), ('compacted', 0);
"""

# Values are read as bytes (CAST AS BLOB): a value that is not UTF-8 must fail only its own
# decoding (decoding.py), not the whole query, which is what reading it as TEXT does.
SELECT = "SELECT namespace, name, CAST(value AS BLOB), mod_rev FROM objects "


def read_events(conn: sqlite3.Connection, last: int,
                kinds: tuple[str, ...] | None = None) -> tuple[list[Any], int, int]:
    """Events after `last` (of `kinds` only, when given: the filter runs in SQLite, so a
    watcher of two kinds neither copies nor decodes the rows of the others), the
    compaction floor, and the store's revision when they were read (how far a watcher
    that got fewer than WATCH_BATCH rows has seen)."""
    # One read transaction so the floor and the rows are from the same snapshot:
    # otherwise a compaction between the two reads could hide lost events.
    where = "rev > ?"
    args: list[int | str] = [last]
    if kinds:
        where += f" AND kind IN ({','.join('?' * len(kinds))})"
        args.extend(kinds)
    conn.execute("BEGIN")
    try:
        floor = meta(conn, "compacted")
        top = meta(conn, "revision")
        rows = conn.execute("SELECT rev, type, kind, namespace, name, CAST(value AS BLOB) FROM events "
                            f"WHERE {where} ORDER BY rev LIMIT ?", (*args, WATCH_BATCH)).fetchall()
    finally:
        conn.execute("COMMIT")
    return rows, floor, top


def compact_to(c: sqlite3.Connection, revision: int) -> None:
    if revision <= meta(c, "compacted"):
        return
    c.execute("DELETE FROM events WHERE rev <= ?", (revision,))
    c.execute("UPDATE meta SET value=? WHERE key='compacted'", (revision,))


def meta(c: sqlite3.Connection, key: str) -> int:
    return int(c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])


def current(c: sqlite3.Connection, kind: str, ns: str, name: str, want: int | None) -> bytes:
    """The stored value; NotFound when absent, Conflict when `want` (0/None: any) is not
    its revision. Called inside the write transaction, so the check and the write are atomic."""
    row = stored(c, kind, ns, name)
    if row is None:
        raise NotFound(f"{kind} {ns + '/' if ns else ''}{name} not found")
    value, mod_rev = row
    if want and want != mod_rev:
        raise Conflict(f"{kind} {ns + '/' if ns else ''}{name}: revision {want} is stale "
                       f"(stored: {mod_rev})")
    return value


def stored(c: sqlite3.Connection, kind: str, ns: str, name: str) -> tuple[bytes, int] | None:
    return c.execute("SELECT CAST(value AS BLOB), mod_rev FROM objects "
                     "WHERE kind=? AND namespace=? AND name=?",
                     (kind, ns, name)).fetchone()


def loads_or_empty(value: bytes) -> dict[str, Any]:
    """The stored object, or {} when it does not decode (an update overwrites it whole)."""
    try:
        d = json.loads(value)
    except (ValueError, TypeError, RecursionError):
        return {}
    return d if isinstance(d, dict) else {}
