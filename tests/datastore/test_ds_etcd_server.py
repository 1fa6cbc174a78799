"""EtcdServer: start, health, restart on the same ports, stop by PID, leftovers."""
from __future__ import annotations

import os

import pytest
import requests

from needs import missing

from podnet.datastore.etcd_server import EtcdServer

ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")


@pytest.fixture
def etcd_bin():
    if not os.path.exists(ETCD_BIN):
        missing(f"etcd binary not found at {ETCD_BIN} (install Debian's etcd-server)")
    return ETCD_BIN


def test_start_restart_stop(tmp_path, etcd_bin):
    server = EtcdServer(str(tmp_path / "d"), binary=etcd_bin).start()
    try:
        port, pid = server.client_port, server.pid
        assert requests.get(server.client_url + "/health", timeout=2).json()["health"] == "true"
        assert open(server.pid_file).read().strip() == str(pid)
        server.restart()
        assert server.client_port == port and server.pid != pid
        assert not os.path.exists(f"/proc/{pid}/cmdline") or b"etcd" not in open(
            f"/proc/{pid}/cmdline", "rb").read()
    finally:
        server.stop()
    assert not server.running() and not os.path.exists(server.pid_file)


def test_stop_leftover_by_pid_file(tmp_path, etcd_bin):
    server = EtcdServer(str(tmp_path / "d"), binary=etcd_bin).start()
    proc = server.proc
    try:
        assert not EtcdServer.stop_leftover(str(tmp_path / "other"))
        assert EtcdServer.stop_leftover(str(tmp_path / "d"))
        assert proc.wait(5) is not None
    finally:
        server.stop()


def test_start_failure_is_clear(tmp_path, etcd_bin):
    server = EtcdServer(str(tmp_path / "d"), binary=etcd_bin, extra_args=["--no-such-flag"])
    with pytest.raises(Exception, match="etcd exited"):
        server.start(timeout=10)
    assert server.proc is None
