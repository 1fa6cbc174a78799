"""kube-proxy's packet-flow tables replayed with real packets (issue 16 §3): every row of
tests/unit/services/test_services_packet_flow.py (where the tracer reads the rendered
ruleset) is sent here as real connections through the service proxy role applied to a
node namespace, and must end as the row says: the endpoints that answer (the endpoint
reports the address it was reached at), masqueraded or not (the endpoint reports the
source it sees), DROP (the connection times out), REJECT (refused), or untouched (no
endpoint answers).

    client pod 10.244.1.99 ─┐
    endpoints (every address of the tables, one netns, one server) ─┼─ node ── out
                                                                   (198.18.0.11)  (203.0.113.5, .99, .200)

The endpoints the tables place on "remote" nodes live in the same namespace: which node
an endpoint is on is what the slice says, and that is all the proxy decides by. Where the
source is the node itself, masquerading cannot be seen (the node's address is what the
endpoint sees either way), so those rows check the endpoints only.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from netnames import unique_netns
from podnet.agent.service_proxy_role import ServiceProxyRole
from podnet.calc.model import ClusterState
from podnet.dataplane.nft.session import NftSession
from builders import make_pool
from svc_topo import sh
from test_services_packet_flow import EXTERNAL, GROUPS, NODE_IP, POD, Flow

pytestmark = pytest.mark.root

OUT_GW = "198.18.0.100"
EXTERNALS = (EXTERNAL, "203.0.113.99", "203.0.113.200")
ROUTED_TO_NODE = ("10.96.0.0/16", "192.0.2.0/24", "198.51.100.0/24")

SERVER = textwrap.dedent('''
    import socket, threading
    def tcp():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 80)); s.listen(512)
        while True:
            c, a = s.accept()
            c.sendall(f"{c.getsockname()[0]} {a[0]}\\n".encode()); c.close()
    def udp():
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IP, socket.IP_PKTINFO, 1)
        u.bind(("0.0.0.0", 80))
        while True:
            data, anc, _, a = u.recvmsg(2048, 256)
            local = next(socket.inet_ntoa(d[8:12]) for l, t, d in anc if t == socket.IP_PKTINFO)
            u.sendto(f"{local} {a[0]}\\n".encode(), a)
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    tcp()
''')

# one per source namespace: reads {"src", "dst", "port", "proto", "n", "timeout"} lines,
# answers with the list of outcomes ("<endpoint> <source seen>", "refused", "timeout", ...)
DRIVER = textwrap.dedent('''
    import json, socket, sys
    for line in sys.stdin:
        q = json.loads(line); out = []
        for _ in range(q["n"]):
            try:
                kind = socket.SOCK_STREAM if q["proto"] == "tcp" else socket.SOCK_DGRAM
                s = socket.socket(socket.AF_INET, kind)
                s.settimeout(q["timeout"])
                if q["src"]:
                    s.bind((q["src"], 0))
                s.connect((q["dst"], q["port"]))
                if kind == socket.SOCK_DGRAM:
                    s.send(b"hi")
                    out.append(s.recv(2048).decode().strip())
                else:
                    out.append(s.makefile().readline().strip())
                s.close()
            except ConnectionRefusedError:
                out.append("refused")
            except (socket.timeout, TimeoutError):
                out.append("timeout")
            except OSError as e:
                out.append(f"error {e.errno}")
        print(json.dumps(out), flush=True)
''')


def endpoint_ips() -> list[str]:
    return sorted({a for g in GROUPS for sl in g()[1] for e in sl.raw["endpoints"] for a in e["addresses"]})


class Replay:
    def __init__(self) -> None:
        self.prefix = unique_netns("pfr")
        self.procs: list[subprocess.Popen[str]] = []
        self.drivers: dict[str, subprocess.Popen[str]] = {}

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def build(self) -> None:
        node, out = self.ns("node"), self.ns("out")
        for n in (node, out):
            sh("ip", "netns", "add", n)
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", node, "link", "add", "v-out", "type", "veth", "peer", "name", "eth0", "netns", out)
        sh("ip", "-n", node, "addr", "add", f"{NODE_IP}/24", "dev", "v-out")
        sh("ip", "-n", out, "addr", "add", f"{OUT_GW}/24", "dev", "eth0")
        for a in EXTERNALS:
            sh("ip", "-n", out, "addr", "add", f"{a}/32", "dev", "eth0")
        sh("ip", "-n", node, "link", "set", "v-out", "up")
        sh("ip", "-n", out, "link", "set", "eth0", "up")
        sh("ip", "-n", node, "route", "add", "default", "via", OUT_GW, "dev", "v-out")
        for net in ROUTED_TO_NODE:
            sh("ip", "-n", out, "route", "add", net, "via", NODE_IP)
        self._pod("client", [POD])
        self._pod("eps", endpoint_ips())
        p = subprocess.Popen(["ip", "netns", "exec", self.ns("eps"), sys.executable, "-c", SERVER],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout and p.stdout.readline().strip() == "ready"
        for where in ("client", "node", "out"):
            d = subprocess.Popen(["ip", "netns", "exec", self.ns(where), sys.executable, "-c", DRIVER],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.procs.append(d)
            self.drivers[where] = d

    def _pod(self, name: str, ips: list[str]) -> None:
        ns, node, veth = self.ns(name), self.ns("node"), f"v-{name}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "-batch", "-", input="".join(f"addr add {ip}/32 dev eth0\n" for ip in ips))
        sh("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        sh("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        sh("ip", "-n", node, "link", "set", veth, "up")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", f"net.ipv4.conf.{veth}.proxy_arp=1",
           f"net.ipv4.neigh.{veth}.proxy_delay=0")
        sh("ip", "-n", node, "-batch", "-", input="".join(f"route add {ip}/32 dev {veth}\n" for ip in ips))

    def send(self, f: Flow, n: int, timeout: float) -> list[str]:
        where = "client" if f.src == POD else "node" if f.src == NODE_IP else "out"
        d = self.drivers[where]
        assert d.stdin and d.stdout
        src = f.src if where == "out" else ""
        d.stdin.write(json.dumps({"src": src, "dst": f.dst, "port": f.port, "proto": f.proto,
                                  "n": n, "timeout": timeout}) + "\n")
        d.stdin.flush()
        return list(json.loads(d.stdout.readline()))

    def teardown(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        existing = set(sh("ip", "netns", "list", check=False).split())
        for name in ("node", "out", "client", "eps"):
            if self.ns(name) in existing:
                sh("ip", "netns", "del", self.ns(name), check=False)


@pytest.fixture(scope="module")
def replay():
    r = Replay()
    try:
        r.build()
        yield r
    finally:
        r.teardown()


def apply(replay: Replay, services: list[Any], slices: list[Any]) -> NftSession:
    state = ClusterState.from_objects(
        [make_pool("v4", "10.244.0.0/16"), make_pool("v6", "fd00:10:244::/56"), *services, *slices],
        node_name="node-1")
    session = NftSession(replay.ns("node"))
    ServiceProxyRole([NODE_IP, "fd00:198:18::11"], conntrack=True, netns=replay.ns("node")).sync(
        state, None, session)
    return session


def outcome(replay: Replay, f: Flow) -> str | None:
    """None when the real packets did what the row says, else what they did."""
    if f.output in ("DROP", "REJECT", ""):
        got = replay.send(f, 2, 0.3)
        want = {"DROP": {"timeout"}, "REJECT": {"refused"}}.get(f.output)
        if want is not None:
            return None if set(got) == want else f"{got}"
        return None if all(" " not in a for a in got) else f"answered: {got}"
    endpoints = {e.rsplit(":", 1)[0] for e in f.output.split(", ")}
    got = replay.send(f, 12 * len(endpoints), 2.0)
    answered = {a.split(" ")[0] for a in got if " " in a}
    seen = {a.split(" ")[1] for a in got if " " in a}
    if answered != endpoints or len(got) != sum(1 for a in got if " " in a):
        return f"reached {sorted(answered)} of {got}"
    if f.src != NODE_IP and (seen != {f.src}) == (not f.masq):
        return f"masquerade {not f.masq}: the endpoints saw {sorted(seen)}"
    return None


@pytest.mark.parametrize("group", GROUPS, ids=[g.__name__ for g in GROUPS])
def test_packet_flow_rows_with_real_packets(replay, group):
    services, slices, flows = group()
    session = apply(replay, services, slices)
    try:
        failures = [f"{f.name}: {f.src} -> {f.dst}:{f.port}/{f.proto}: want {f.output!r} "
                    f"masq={f.masq}, {bad}" for f in flows if (bad := outcome(replay, f)) is not None]
    finally:
        session.close()
        sh("ip", "netns", "exec", replay.ns("node"), "nft", "delete", "table", "inet", "podnet-svc")
        sh("ip", "netns", "exec", replay.ns("node"), "conntrack", "-F", check=False)
    assert not failures, "\n".join(failures)
