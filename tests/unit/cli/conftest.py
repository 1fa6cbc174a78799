"""The CLI tests' environment: a fresh PODNET_HOME and SQLite store per test."""
from __future__ import annotations

import pytest


@pytest.fixture
def env(tmp_path, monkeypatch):
    """(temp dir, datastore URL), with PODNET_HOME and PODNET_DATASTORE pointing into it."""
    monkeypatch.setenv("PODNET_HOME", str(tmp_path / "home"))
    url = f"sqlite://{tmp_path / 'store.db'}"
    monkeypatch.setenv("PODNET_DATASTORE", url)
    return tmp_path, url
