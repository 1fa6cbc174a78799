"""Fixtures: a node namespace + SQLite store per test (see cnilab.Lab), always cleaned up."""
from __future__ import annotations

import pytest

from cnilab import Lab, pool


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def dual_lab(lab):
    lab.store.create(pool("v4", "10.244.0.0/16"))
    lab.store.create(pool("v6", "fd00:10:244::/56"))
    return lab
