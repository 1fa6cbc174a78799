"""Host protection and anti-spoofing on the input path, with real packets (issue 12 §1).

The node netns runs listeners standing in for etcd (2379/TCP), the agent's metrics
(9091/TCP), a node-local DNS (53/UDP and TCP) and the API server (6443/TCP), the allowed
ones. From a pod: the node's own addresses (underlay IPv4 and IPv6, the link-local fe80::1
on the pod's veth) answer DNS and the API server only; every other port is refused. Another node's address (here the outside
netns, declared as Node node-2) is refused on its way out through this node, where the
pod is still visible (it leaves masqueraded). The node's own connections and pod to pod
still work. A pod forging its source towards the node (IPv4 and IPv6, UDP and ICMP) never
reaches the node's listener; the same packet with its own source does.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import topo
from podnet.api.objects import Node
from podnet.api.defaults import API_SERVER_PORT

pytestmark = pytest.mark.root

ETCD, METRICS, DNS, API = 2379, 9091, 53, API_SERVER_PORT
NODE_ADDRS = (topo.NODE_UP_V4, topo.NODE_UP_V6)

CONNECT = r"""
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
addr = socket.getaddrinfo(host, port, fam)[0][4]
s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(1.5)
try:
    if proto == "tcp":
        s.connect(addr); s.recv(10)
    else:  # connected, so the ICMP error of a rejected datagram is reported
        s.connect(addr); s.send(b"ping"); s.recv(100)
    print("ok")
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("unreachable" if e.errno in (101, 113, 13) else f"error {e.errno}")
"""



def _connect(ns: str, host: str, port: int, proto: str = "tcp") -> str:
    return topo.nsx(ns, sys.executable, "-c", CONNECT, host, str(port), proto).stdout.strip()


@pytest.fixture(scope="module")
def listener(node):
    """Listeners in the node's netns; yields a function returning the sources seen so far."""
    p = subprocess.Popen(["ip", "netns", "exec", node.topo.node, sys.executable, "-u", str(topo.SERVER),
                          "--report-peers", str(ETCD), str(METRICS), str(DNS), str(API)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    import os
    os.set_blocking(p.stdout.fileno(), False)
    seen: list[str] = []

    def sources() -> list[str]:
        time.sleep(0.3)
        for line in p.stdout.readlines():  # type: ignore[union-attr]
            seen.append(line.split()[-1])
        return list(seen)
    try:
        yield sources
    finally:
        p.terminate()
        p.wait(5)


def _node(name: str, *ips: str) -> Node:
    return Node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                 "status": {"addresses": [{"type": "InternalIP", "address": a} for a in ips]}})


@pytest.fixture
def nodes(node):
    """node-1 (this node) and node-2 (the outside netns's addresses stand in for it)."""
    node.set_objects("NetworkPolicy", [])
    node.set_objects("Node", [_node("node-1", *NODE_ADDRS),
                              _node("node-2", topo.OUTSIDE_V4, topo.OUTSIDE_V6)])
    try:
        yield node
    finally:
        node.set_objects("Node", [])


@pytest.mark.parametrize("addr", NODE_ADDRS + ("fe80::1%eth0",))
def test_pod_reaches_only_dns_and_the_api_server_on_its_node(nodes, listener, addr):
    ns = nodes.topo.pod_netns("x/a")
    # the kernel cannot route a TCP reset to a link-local address (no interface in the
    # lookup), so there the refusal is a drop: the connect times out
    refused = ("refused",) if not addr.startswith("fe80") else ("refused", "timeout")
    assert _connect(ns, addr, ETCD) in refused
    assert _connect(ns, addr, METRICS) in refused
    assert _connect(ns, addr, DNS) == "ok"
    assert _connect(ns, addr, API) == "ok"
    if not addr.startswith("fe80"):
        # (a UDP reply to a link-local peer is lost without any ruleset too: every veth of
        # the node holds fe80::1, so only TCP is checked there)
        assert _connect(ns, addr, DNS, "udp") == "ok"
        assert _connect(ns, addr, 9999, "udp") == "unreachable"  # ICMP admin-prohibited


def test_host_refused_counter_counts(nodes, listener):
    out = topo.nsx(nodes.topo.node, "nft", "-j", "list", "counter", "inet", "podnet-pol", "host-refused").stdout
    before = next(o["counter"]["packets"] for o in json.loads(out)["nftables"] if "counter" in o)
    _connect(nodes.topo.pod_netns("y/a"), topo.NODE_UP_V4, ETCD)
    out = topo.nsx(nodes.topo.node, "nft", "-j", "list", "counter", "inet", "podnet-pol", "host-refused").stdout
    assert next(o["counter"]["packets"] for o in json.loads(out)["nftables"] if "counter" in o) > before


@pytest.mark.parametrize("addr", [topo.OUTSIDE_V4, topo.OUTSIDE_V6])
def test_pod_to_another_nodes_address_is_refused_on_its_way(node, addr):
    ns = node.topo.pod_netns("x/a")
    node.set_objects("NetworkPolicy", [])
    assert _connect(ns, addr, 81) == "ok"  # not a node: the outside world, masqueraded
    node.set_objects("Node", [_node("node-2", topo.OUTSIDE_V4, topo.OUTSIDE_V6)])
    try:
        assert _connect(ns, addr, 81) == "refused"
        assert _connect(ns, addr, 81, "udp") == "unreachable"
    finally:
        node.set_objects("Node", [])
    assert _connect(ns, addr, 81) == "ok"


def test_node_tools_pods_and_ping_still_work(nodes, listener):
    # the node opens connections to its pods and to the outside (replies come back in)
    assert _connect(nodes.topo.node, "10.244.0.1", 80) == "ok"
    assert _connect(nodes.topo.node, "fd00:10:244::1", 80) == "ok"
    assert _connect(nodes.topo.node, topo.OUTSIDE_V4, 80) == "ok"
    assert _connect(nodes.topo.node, topo.NODE_UP_V4, ETCD) == "ok"  # the node itself
    # pod to pod, both families, and ping to the node (IPv6 needs neighbour discovery)
    ns = nodes.topo.pod_netns("x/a")
    assert _connect(ns, "10.244.0.2", 80) == "ok"
    assert _connect(ns, "fd00:10:244::2", 80) == "ok"
    for addr in NODE_ADDRS:
        assert topo.nsx(ns, "ping", "-c1", "-W2", addr, check=False).returncode == 0


SEND = r"""
import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 19, 1)  # IP_FREEBIND: the forged address need not be ready
s.bind((src, 0))
s.sendto(b"forged" if src else b"genuine", (dst, port))
"""


@pytest.mark.parametrize("fam", [4, 6])
def test_forged_source_to_the_node_is_dropped(nodes, listener, fam):
    ns = nodes.topo.pod_netns("x/a")
    own, forged = ("10.244.0.1", "10.244.0.5") if fam == 4 else ("fd00:10:244::1", "fd00:10:244::5")
    dst = topo.NODE_UP_V4 if fam == 4 else topo.NODE_UP_V6
    plen = 32 if fam == 4 else 128
    topo.nsx(ns, "ip", "addr", "add", f"{forged}/{plen}", "dev", "eth0", "nodad")
    try:
        topo.nsx(ns, sys.executable, "-c", SEND, forged, dst, str(DNS))
        topo.nsx(ns, "ping", "-c1", "-W1", "-I", forged, dst, check=False)
        topo.nsx(ns, sys.executable, "-c", SEND, own, dst, str(DNS))
        seen = listener()
        assert own in seen  # the genuine packet reaches the node's listener
        assert forged not in seen  # the forged one never does
        ct = topo.nsx(nodes.topo.node, "conntrack", "-L", "-s", forged, check=False).stdout
        assert forged not in ct  # neither UDP nor ICMP got as far as conntrack's confirmation
    finally:
        topo.nsx(ns, "ip", "addr", "del", f"{forged}/{plen}", "dev", "eth0", check=False)
        topo.nsx(nodes.topo.node, "conntrack", "-D", "-s", forged, check=False)


@pytest.fixture
def proxy(nodes):
    """The real service proxy role beside the policy and NAT roles, in the same node."""
    from podnet.agent.service_proxy_role import ServiceProxyRole
    from podnet.dataplane.nft.runner import NftRunner
    role = ServiceProxyRole([topo.NODE_UP_V4, topo.NODE_UP_V6], conntrack=False, netns=nodes.topo.node)

    def sync(*objs):
        for o in objs:
            nodes.state.put(o)
        NftRunner(nodes.topo.node).apply(role.nft_fragment(nodes.state, None))
        role.committed(True)
    try:
        yield sync
    finally:
        for kind in ("Service", "EndpointSlice"):
            nodes.state.objects[kind] = {}
        topo.nsx(nodes.topo.node, "nft", "delete", "table", "inet", "podnet-svc", check=False)


def test_services_still_work_to_the_node_and_by_nodeport(nodes, listener, proxy):
    """A Service whose endpoint is the node's own address (host network, as the
    `kubernetes` Service) passes by its DNAT; a NodePort on the pod's own node reaches its
    pod endpoint; the node's address itself stays refused on that port."""
    from builders import endpoint, make_service, make_slice
    host = make_service("default", "host-etcd", ip="10.96.0.99", selector={},
                        ports=({"name": "c", "port": 443, "targetPort": ETCD},))
    host_eps = make_slice("default", "host-etcd", [endpoint(topo.NODE_UP_V4)],
                          ports=({"name": "c", "port": ETCD, "protocol": "TCP"},))
    web = make_service("default", "web", ip="10.96.0.80",
                       mutate=lambda d: d["spec"].update(type="NodePort"),
                       ports=({"name": "http", "port": 80, "targetPort": 80, "nodePort": 30080},))
    web_eps = make_slice("default", "web", [endpoint("10.244.0.2")],
                         ports=({"name": "http", "port": 80, "protocol": "TCP"},))
    proxy(host, host_eps, web, web_eps)
    ns = nodes.topo.pod_netns("x/a")
    assert _connect(ns, topo.NODE_UP_V4, ETCD) == "refused"
    assert _connect(ns, "10.96.0.99", 443) == "ok"  # the same port, through its Service
    assert _connect(ns, topo.NODE_UP_V4, 30080) == "ok"  # NodePort on its own node
    assert _connect(ns, "10.96.0.80", 80) == "ok"
