"""The lab's etcd: a real etcd server on the control-plane node (n1), on its underlay IP.

Agents and the kubelet (inside node namespaces) reach it over the underlay like any
cluster member would: `etcd://198.18.0.11:2379/podnet`. The CLI runs in the machine's own
namespace, where that address does not exist; its URL carries `?netns=pn-<lab>-n1` so the
datastore client opens its connections inside that namespace, and nothing is added to the
machine's namespace. etcd also listens on a unix socket in the lab dir (`etcd.sock:0`,
Debian's etcd 3.4 naming) for tools that prefer a file.
"""
from __future__ import annotations

import shutil
import socket
import time
from typing import Callable

from podnet.dataplane.net.sysctl import call_in_netns
from podnet.lab import procs
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec

ETCD_PORT = 2379
PEER_PORT = 2380
PREFIX = "podnet"
START_TIMEOUT = 20.0


class EtcdError(Exception):
    pass


def urls(spec: LabSpec) -> tuple[str, str]:
    """(URL inside the lab's nodes, URL for the CLI in the machine's namespace)."""
    cp = spec.nodes[0]
    node_url = f"etcd://{cp.ip4}:{ETCD_PORT}/{PREFIX}"
    return node_url, f"{node_url}?netns={cp.netns}"


def _listening(netns: str, ip: str, port: int) -> bool:
    def body() -> bool:
        try:
            with socket.create_connection((ip, port), timeout=0.2):
                return True
        except OSError:
            return False
    return call_in_netns(netns, body)


def start_etcd(spec: LabSpec, state: LabState, progress: Callable[[str], None]) -> tuple[str, str]:
    binary = shutil.which("etcd")
    if binary is None:
        raise EtcdError("--datastore etcd needs the etcd binary (Debian: apt install etcd-server)")
    cp = spec.nodes[0]
    data = state.path("etcd")
    data.mkdir(parents=True, exist_ok=True)
    client = f"http://{cp.ip4}:{ETCD_PORT}"
    argv = [binary, "--name", f"pn-{spec.name}", "--data-dir", str(data),
            "--listen-client-urls", f"{client},unix://etcd.sock:0",
            "--advertise-client-urls", client,
            "--listen-peer-urls", f"http://127.0.0.1:{PEER_PORT}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{PEER_PORT}",
            "--initial-cluster", f"pn-{spec.name}=http://127.0.0.1:{PEER_PORT}",
            "--auto-compaction-retention", "1000", "--auto-compaction-mode", "revision",
            "--quota-backend-bytes", str(512 * 1024 * 1024), "--log-level", "warn"]
    pid = procs.spawn(state, "etcd", argv, netns=cp.netns, cwd=str(state.dir),
                      env={"ETCD_UNSUPPORTED_ARCH": "", "GOMAXPROCS": "2"})
    deadline = time.monotonic() + START_TIMEOUT
    while not _listening(cp.netns, cp.ip4, ETCD_PORT):
        if not procs.alive(pid):
            raise EtcdError(f"etcd exited at start; see {state.log('etcd')}")
        if time.monotonic() > deadline:
            raise EtcdError(f"etcd did not listen on {client} within {START_TIMEOUT:.0f}s; "
                            f"see {state.log('etcd')}")
        time.sleep(0.05)
    node_url, cli_url = urls(spec)
    progress(f"etcd on {cp.name} ({client}), pid {pid}")
    return node_url, cli_url
