"""Fixtures: a node namespace + SQLite store per test (see cnilab.Lab), always cleaned up,
with and without the node's CNI daemon."""
from __future__ import annotations

import pytest

from cnilab import Lab, pool


@pytest.fixture(params=["in-process", "daemon"])
def lab(request, tmp_path):
    """Every test runs twice: the binaries doing the work themselves, and handing it to
    the node's CNI daemon (podnet.cni.daemon), which must behave identically."""
    lab = Lab(tmp_path)
    try:
        if request.param == "daemon":
            lab.start_daemon()
        yield lab
    finally:
        lab.close()


@pytest.fixture
def dual_lab(lab):
    lab.store.create(pool("v4", "10.244.0.0/16"))
    lab.store.create(pool("v6", "fd00:10:244::/56"))
    return lab
