"""Writing raw bytes into a store as a disk fault or a buggy writer would: for the tests
that show one bad entry cannot poison readers (datastore suite and the lab)."""
from __future__ import annotations

import base64
import time

from podnet.datastore.sqlite import SqliteDatastore


def poison(store, kind: str, ns: str, name: str, value: bytes) -> int:
    """Write raw bytes at an object's key, as a writer that skips podnet's encoding would;
    the store revision of the write. SQLite: row and event in one transaction; etcd: a put
    over the store's own connection (so it follows whatever transport the store uses)."""
    if isinstance(store, SqliteDatastore):
        def run(c) -> int:
            rev = store._bump(c)
            c.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?)", (kind, ns, name, value, rev, rev))
            c.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?)",
                      (rev, "MODIFIED", kind, ns, name, value, time.time()))
            return rev
        return store._write(run)
    return put_raw(store, f"{kind}/{ns}/{name}", value)


def put_raw(store, relative_key: str, value: bytes) -> int:
    resp = store._post("/kv/put", {"key": base64.b64encode(f"{store.prefix}/{relative_key}".encode()).decode(),
                                   "value": base64.b64encode(value).decode()})
    return int(resp["header"]["revision"])
