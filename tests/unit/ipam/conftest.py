"""IPAM tests run the allocator against the real SQLite store in a temp dir."""
from __future__ import annotations

import pytest


@pytest.fixture
def store(tmp_path):
    from podnet.datastore.sqlite import SqliteDatastore
    s = SqliteDatastore(f"sqlite:///{tmp_path}/ipam.db")
    yield s
    s.close()
