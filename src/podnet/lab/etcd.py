"""The lab's etcd: a real etcd server on the control-plane node (n1), on its underlay IP,
with TLS and client certificates only (issue 12 §1).

At `podnet up` the lab gets its own CA (lab/pki.py); etcd gets a server certificate for
its underlay addresses, 127.0.0.1 and localhost, and runs with `--client-cert-auth`, so a
client without a certificate signed by the lab's CA is refused at the TLS handshake.
Each component gets its own client certificate (`client_url(who)`): agents (one per
node), the kubelet, the controllers, the CNI IPAM plugin, the CLI, and the DNS add-on.

Agents and the kubelet (inside node namespaces) reach it over the underlay like any
cluster member would: `etcds://198.18.0.11:2379/podnet?ca=..&cert=..&key=..`. The CLI runs
in the machine's own namespace, where that address does not exist; its URL also carries
`netns=pn-<lab>-n1` so the datastore client opens its connections inside that namespace,
and nothing is added to the machine's namespace. etcd also listens on a unix socket in the
lab dir (`etcd.sock:0`, Debian's etcd 3.4 naming), TLS too (`unixs://`): the DNS add-on's
pods use it, because a pod's packets to a node's own ports are refused (host
protection, calc/host.py) and a unix socket is not reached through the network.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Callable

from podnet.dataplane.net.sysctl import call_in_netns
from podnet.datastore.etcd_server import ServerTls, tls_flags, tls_query
from podnet.datastore.transport import Tls
from podnet.lab import procs
from podnet.lab.pki import SERVER_NAME, LabPKI
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec

ETCD_PORT = 2379
PEER_PORT = 2380
PREFIX = "podnet"
START_TIMEOUT = 20.0


class EtcdError(Exception):
    pass


UNIX_SOCKET = "etcd.sock:0"
# who gets a client certificate besides one `agent-<node>` per node
CLIENTS = ("cli", "kubelet", "controllers", "cni", "dns", "apiserver")


def pki(spec: LabSpec, state: LabState) -> LabPKI:
    return LabPKI(state.path("pki"), spec.name)


def client_url(spec: LabSpec, state: LabState, who: str, *, netns: bool = False,
               unix: bool = False) -> str:
    """The URL component `who` opens: over the underlay (from inside a node), through the
    control-plane node's namespace (`netns`: the CLI) or on the unix socket (`unix`)."""
    c = pki(spec, state).client(who)
    query = tls_query(Tls(c.ca, c.cert, c.key))
    if unix:
        return f"etcds+unix://{state.path(UNIX_SOCKET)}/{PREFIX}?{query}"
    cp = spec.nodes[0]
    ns = f"netns={cp.netns}&" if netns else ""
    return f"etcds://{cp.ip4}:{ETCD_PORT}/{PREFIX}?{ns}{query}"


def urls(spec: LabSpec, state: LabState) -> dict[str, str]:
    """Every component's URL: `agent-<node>`, CLIENTS (`cli` through the node's netns,
    `dns` on the unix socket)."""
    out = {f"agent-{n.name}": client_url(spec, state, f"agent-{n.name}") for n in spec.nodes}
    out.update((w, client_url(spec, state, w, netns=w == "cli", unix=w == "dns")) for w in CLIENTS)
    return out


def make_pki(spec: LabSpec, state: LabState) -> ServerTls:
    """The lab's CA, etcd's server certificate and every client's; the lab dir root-only."""
    os.chmod(state.dir, 0o700)
    p = pki(spec, state)
    p.create_ca()
    cp = spec.nodes[0]
    p.issue_server([a for a in (cp.ip4, cp.ip6, "127.0.0.1") if a])
    for who in (*CLIENTS, *(f"agent-{n.name}" for n in spec.nodes)):
        p.issue_client(who)
    return ServerTls(str(p.ca_cert), str(p.path(SERVER_NAME, "crt")), str(p.path(SERVER_NAME, "key")))


def _listening(netns: str, ip: str, port: int) -> bool:
    def body() -> bool:
        try:
            with socket.create_connection((ip, port), timeout=0.2):
                return True
        except OSError:
            return False
    return call_in_netns(netns, body)


def start_etcd(spec: LabSpec, state: LabState, progress: Callable[[str], None]) -> dict[str, str]:
    """Start etcd with TLS; every component's URL (see `urls`)."""
    binary = shutil.which("etcd")
    if binary is None:
        raise EtcdError("--datastore etcd needs the etcd binary (Debian: apt install etcd-server)")
    cp = spec.nodes[0]
    tls = make_pki(spec, state)
    data = state.path("etcd")
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    client = f"https://{cp.ip4}:{ETCD_PORT}"
    peer = f"https://127.0.0.1:{PEER_PORT}"
    argv = [binary, "--name", f"pn-{spec.name}", "--data-dir", str(data),
            "--listen-client-urls", f"{client},unixs://{UNIX_SOCKET}",
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"pn-{spec.name}={peer}",
            "--auto-compaction-retention", "1000", "--auto-compaction-mode", "revision",
            "--quota-backend-bytes", str(512 * 1024 * 1024), "--log-level", "warn",
            *tls_flags(tls)]
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
    progress(f"etcd on {cp.name} ({client}, TLS with client certificates), pid {pid}")
    return urls(spec, state)
