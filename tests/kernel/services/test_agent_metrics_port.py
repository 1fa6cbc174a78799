"""`podnet agent --metrics-port`: a real agent in a netns of its own serves its sync counts
as Prometheus text, and they count the syncs it did (a Service added = a partial sync)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from netnames import unique_netns

from podnet.api.objects import from_dict
from podnet.dataplane.net.sysctl import call_in_netns
from podnet.datastore.interface import open_datastore

pytestmark = pytest.mark.root
PORT = 9464


def scrape(netns: str) -> str:
    def body() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=2) as r:
            return r.read().decode()
    return call_in_netns(netns, body)


def value(text: str, prefix: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(prefix)))


def test_metrics_port_serves_sync_counts(tmp_path):
    ns = unique_netns("metrics")
    url = f"sqlite:///{tmp_path}/store.db"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "podnet.cli.main",
                                 "--datastore", url, "agent", "--node", "m1", "--node-ip", "198.18.0.99",
                                 "--metrics-port", str(PORT)],
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "w"))
        text = ""
        deadline = time.monotonic() + 15
        while 'role="services",kind="full"} 1' not in text:  # exactly one full sync at start
            assert proc.poll() is None, (tmp_path / "agent.log").read_text()
            assert time.monotonic() < deadline, text or (tmp_path / "agent.log").read_text()
            time.sleep(0.2)
            try:
                text = scrape(ns)
            except OSError:
                continue
        partial = 'podnet_agent_syncs_total{node="m1",role="services",kind="partial"}'
        before = value(text, partial)  # its own Node's registration may count already
        store = open_datastore(url)
        try:
            store.create(from_dict({"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": "web", "namespace": "default"},
                                    "spec": {"clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"],
                                             "ports": [{"port": 80, "protocol": "TCP"}]}}))
        finally:
            store.close()
        while value(text, partial) <= before:
            assert time.monotonic() < deadline + 10, text
            time.sleep(0.2)
            text = scrape(ns)
        assert value(text, 'podnet_agent_sync_failures_total{node="m1",role="all"}') == 0
        assert value(text, 'podnet_agent_last_sync_seconds{node="m1",role="services"}') > 0
        while "10.96.0.50" not in (table := subprocess.run(
                ["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "podnet-svc"],
                capture_output=True, text=True, check=True).stdout):  # a partial sync, by the session
            assert time.monotonic() < deadline + 10, table
            time.sleep(0.1)
        text = scrape(ns)
        assert value(text, 'podnet_agent_syncs_total{node="m1",role="all",kind="full"}') == 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
