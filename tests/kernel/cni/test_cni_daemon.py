"""The node daemon: scoped to its namespace, and gone when the namespace is."""
from __future__ import annotations

import subprocess

import pytest

from podnet.cni import daemon
from podnet.cni.client import SOCKET_NAME

pytestmark = pytest.mark.root


def _reachable(ns: str) -> bool:
    code = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r)" % SOCKET_NAME)
    return subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", code],
                          capture_output=True).returncode == 0


def test_daemon_is_only_reachable_from_its_node_and_exits_with_it(lab):
    other = lab.netns("other")
    p = daemon.start(lab.node) if not _reachable(lab.node) else None
    try:
        assert _reachable(lab.node) and not _reachable(other)
        if p is not None:
            subprocess.run(["ip", "netns", "del", lab.node], check=True)
            lab.namespaces.remove(lab.node)
            p.wait(15)  # exits by itself once its namespace is gone
    finally:
        if p is not None and p.poll() is None:
            daemon.stop(p)
            pytest.fail("the daemon outlived its node namespace")
