"""Reaching a datastore across network namespaces (root): an etcd that listens only inside
a test's own netns, used from the root namespace through `?netns=`; SQLite written by
processes in different namespaces at once. Nothing is changed in the root namespace:
the test only opens sockets there, and all links/addresses live in the test's netns."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from needs import missing
from netnames import unique_netns

from podnet.api.objects import from_dict
from podnet.datastore.etcd_server import EtcdServer
from podnet.datastore.interface import open_datastore
from podnet.datastore.transport import NetnsError, socket_in_netns

pytestmark = pytest.mark.root

ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")
ADDR = "198.18.0.11"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        missing("needs root (creates a network namespace)")
    if shutil.which("ip") is None:
        missing("needs iproute2's `ip netns`")
    name = unique_netns("ds")
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        # (no dummy driver in every kernel: the namespace's own loopback carries it)
        _ip("-n", name, "addr", "add", f"{ADDR}/32", "dev", "lo")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def etcd_in_netns(netns, tmp_path):
    if not os.path.exists(ETCD_BIN):
        missing(f"etcd binary not found at {ETCD_BIN}")
    server = EtcdServer(str(tmp_path / "etcd"), netns=netns, client_host=ADDR, binary=ETCD_BIN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_socket_in_netns_sees_that_namespace(netns):
    s = socket_in_netns(netns)
    try:
        s.bind((ADDR, 0))  # the address exists only inside the netns...
    finally:
        s.close()
    with socket.socket() as here, pytest.raises(OSError):
        here.bind((ADDR, 0))  # ...and not here (a local check: no packet is sent)
    missing = unique_netns("ds") + "-never-made"
    with pytest.raises(NetnsError, match=missing):
        socket_in_netns(missing)


def test_etcd_inside_netns_is_used_from_root_namespace(etcd_in_netns, netns):
    url = etcd_in_netns.datastore_url("/lab")
    assert url == f"etcd://{ADDR}:2379/lab?netns={netns}"
    store = open_datastore(url)
    try:
        created = store.create(from_dict({"kind": "Node", "metadata": {"name": "n1"}}))
        assert store.get("Node", "", "n1") == created
        stop = threading.Event()
        start = store.revision()
        store.create(from_dict({"kind": "Node", "metadata": {"name": "n2"}}))
        evs = []
        for ev in store.watch(start, stop=stop):
            evs.append(ev)
            break
        assert [e.object.name for e in evs] == ["n2"]
        assert [n.name for n in store.list("Node").items] == ["n1", "n2"]
    finally:
        store.close()


def test_etcd_server_unix_socket(tmp_path):
    if not os.path.exists(ETCD_BIN):
        missing(f"etcd binary not found at {ETCD_BIN}")
    sock = tmp_path / "etcd.sock:0"
    with EtcdServer(str(tmp_path / "etcd"), unix_socket=str(sock), binary=ETCD_BIN):
        store = open_datastore(f"etcd+unix://{sock}/unix-prefix")
        try:
            store.create(from_dict({"kind": "Node", "metadata": {"name": "n1"}}))
            assert [n.name for n in store.list("Node").items] == ["n1"]
        finally:
            store.close()


WORKER = r"""
import sys
from podnet.api.objects import from_dict
from podnet.datastore.interface import Conflict, open_datastore
store = open_datastore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    while True:
        cur = store.get("Counter", "default", "c")
        d = cur.to_dict(); d["spec"]["value"] += 1
        try:
            store.update(from_dict(d), revision=cur.resource_version); break
        except Conflict:
            pass
"""


def test_sqlite_shared_by_processes_in_different_namespaces(netns, tmp_path):
    url = f"sqlite://{tmp_path}/store.db"
    store = open_datastore(url)
    store.create(from_dict({"kind": "Counter", "metadata": {"name": "c"}, "spec": {"value": 0}}))
    argv = [sys.executable, "-c", WORKER, url, "150"]
    procs = [subprocess.Popen(["ip", "netns", "exec", netns, *argv] if i % 2 else argv,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert store.get("Counter", "default", "c").spec["value"] == 600
    store.close()
