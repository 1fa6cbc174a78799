"""The lab on etcd: a real etcd on the control-plane node's underlay address, with TLS and
client certificates (issue 12 §1), agents and kubelet reaching it over the underlay, the
CLI through the node's namespace."""
from __future__ import annotations

import socket
import ssl
import urllib.request

import pytest

from lablib import all_pairs, manifests, probe_from
from podnet.dataplane.net.sysctl import call_in_netns
from podnet.lab.up import AGENT_METRICS_PORT

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.etcd]
PORT = 8181


def test_etcd_lab_pod_to_pod(make_lab):
    lab = make_lab("--nodes", "2", "--dual-stack", "--datastore", "etcd")
    url = (lab.dir / "datastore.url").read_text().strip()
    assert url.startswith("etcds://198.18.0.11:2379") and f"netns=pn-{lab.name}-n1" in url
    pki = lab.dir / "pki"
    assert lab.dir.stat().st_mode & 0o777 == 0o700
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in pki.glob("*.key"))

    def handshake(cert: bool) -> bytes:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        if cert:
            ctx.load_cert_chain(str(pki / "agent-n2.crt"), str(pki / "agent-n2.key"))
        with socket.create_connection(("198.18.0.11", 2379), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname="198.18.0.11") as s:
                s.sendall(b"GET /version HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
                return s.recv(64)
    # a node reaches it over the underlay, with its certificate; without one it is refused
    assert call_in_netns(f"pn-{lab.name}-n2", lambda: handshake(True)).startswith(b"HTTP/1.1 200")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call_in_netns(f"pn-{lab.name}-n2", lambda: handshake(False))
    # a bad certificate file is named, not a TLS failure
    bad = url.replace(str(pki / "cli.key"), str(pki / "nope.key"))
    out = lab.podnet("--datastore", bad, "get", "pods", check=False)
    assert out.returncode != 0 and "cannot read the client key" in out.stderr and "nope.key" in out.stderr
    out = lab.podnet("get", "nodes", "-o", "wide").stdout
    assert out.count("healthy") == 2
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    pods = lab.wait_pods(4)
    failures = all_pairs(pods, PORT)
    assert not failures, "\n".join(failures[:20])


def test_pods_cannot_reach_etcd_nor_node_ports(make_lab):
    """Host protection (issue 12 §1): from a pod, on its own node or another, etcd's port
    on the control-plane node and the agents' metrics ports are refused, the API server's
    port is not; pods still reach each other, Services and cluster DNS; the node's own
    tools (agents, kubelet, CLI) work."""
    lab = make_lab("--nodes", "2", "--dual-stack", "--datastore", "etcd")
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    pods = lab.wait_pods(4)
    assert {p.node_name for p in pods} == {"n1", "n2"}
    # the node itself reaches etcd (shown above with a certificate); a pod does not get
    # as far as the TLS handshake, on n1 (input) or on n2 (refused on its way out)
    ca = str(lab.dir / "pki" / "ca.crt")

    def api_server_handshake() -> str:  # the port pods may reach: the API server's
        ctx = ssl.create_default_context(cafile=ca)
        with socket.create_connection(("198.18.0.11", 6443), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname="198.18.0.11") as s:
                return s.version() or ""
    own = {"n1": "198.18.0.11", "n2": "198.18.0.12"}
    for node, ip in own.items():  # the node's own tools scrape its agent's metrics
        def scrape(ip: str = ip) -> str:
            with urllib.request.urlopen(f"http://{ip}:{AGENT_METRICS_PORT}/metrics", timeout=2) as r:
                return r.read().decode()
        assert "podnet_agent_syncs_total" in call_in_netns(f"pn-{lab.name}-{node}", scrape)
    for p in pods:
        netns = p.annotations["podnet.io/netns"]
        targets = [("198.18.0.11", 2379, "TCP"), ("198.18.0.11", AGENT_METRICS_PORT, "TCP"),
                   (own[p.node_name], AGENT_METRICS_PORT, "TCP")]
        for target, outcome in probe_from(netns, targets):
            assert outcome.startswith("ERROR") and ("refused" in outcome or "timed out" in outcome), \
                (p.name, p.node_name, target, outcome)
        assert call_in_netns(netns, api_server_handshake).startswith("TLS"), (p.name, p.node_name)
        # cluster DNS answers (its pods read etcd over the unix socket)
        dig = lab.podnet("exec", p.name, "--", "dig", "+short", "+time=2", "+tries=2",
                         "kube-dns.kube-system.svc.cluster.local")
        assert dig.stdout.split() == ["10.96.0.10"], dig.stdout
    failures = all_pairs(pods, PORT)
    assert not failures, "\n".join(failures[:20])
    out = lab.podnet("get", "nodes", "-o", "wide").stdout  # agents heartbeat through etcd
    assert out.count("healthy") == 2
