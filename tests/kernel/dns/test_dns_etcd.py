"""`podnet dns` on an etcd datastore (the many-machines mode): a real etcd inside a pn-dns
netns, reached by the server there and by the test over etcd's unix socket."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from needs import missing
from netnames import unique_netns

from podnet.datastore.interface import open_datastore
from builders import make_service

pytestmark = pytest.mark.root

NS = unique_netns("dnsetcd")
ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")
VENV = Path(__file__).resolve().parents[3] / ".venv" / "bin"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


def _svc(name: str, ip: str):
    return make_service("default", name, ip=ip, ports=[{"name": "http", "port": 80}])


def _dig(*args: str) -> str:
    return _run("ip", "netns", "exec", NS, "dig", "@127.0.0.1", "+short", "+time=1", "+tries=1", *args,
                check=False).stdout


def _until(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_dns_serves_an_etcd_store(tmp_path):
    if not os.path.exists(ETCD_BIN):
        missing(f"etcd binary not found at {ETCD_BIN}")
    from podnet.datastore.etcd_server import EtcdServer
    sock = tmp_path / "etcd.sock:0"
    etcd = EtcdServer(str(tmp_path / "etcd"), netns=NS, client_host="127.0.0.1",
                      unix_socket=str(sock), binary=ETCD_BIN)
    dns_proc = None
    store = None
    _run("ip", "netns", "add", NS)
    try:
        _run("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        etcd.start()
        url = f"etcd+unix://{sock}/dns-test"
        store = open_datastore(url)
        store.create(_svc("web", "10.96.0.20"))
        dns_proc = subprocess.Popen(["ip", "netns", "exec", NS, str(VENV / "podnet"), "--datastore", url, "dns",
                                     "--listen", "127.0.0.1", "--upstream", "none"],
                                    stdout=subprocess.DEVNULL, stderr=open(tmp_path / "dns.log", "w"))
        assert _until(lambda: _dig("web.default.svc.cluster.local").split() == ["10.96.0.20"], 15)
        store.create(_svc("fresh", "10.96.0.77"))
        # Changes are served within 1 s (the requirement), on etcd too.
        assert _until(lambda: _dig("fresh.default.svc.cluster.local").split() == ["10.96.0.77"], 1.0)
        assert _dig("_http._tcp.fresh.default.svc.cluster.local", "SRV").split() == \
            ["0", "100", "80", "fresh.default.svc.cluster.local."]
        store.delete("Service", "default", "fresh")
        assert _until(lambda: "NXDOMAIN" in _run("ip", "netns", "exec", NS, "dig", "@127.0.0.1",
                                                 "fresh.default.svc.cluster.local", check=False).stdout, 1.0)
        assert dns_proc.poll() is None
    finally:
        if dns_proc is not None and dns_proc.poll() is None:
            dns_proc.terminate()
            dns_proc.wait(5)
        if store is not None:
            store.close()
        etcd.stop()
        _run("ip", "netns", "del", NS, check=False)
