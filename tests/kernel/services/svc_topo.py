"""A small real topology for service proxy tests and the bench, all in namespaces named
`<prefix>-*` (never the root namespace; the caller picks a unique prefix, `pnt-svc-<id>`
for tests, `pnb-svc-<id>` for the bench):

    client (10.244.1.2)  ─┐
    b1..bN (10.244.1.1x) ─┼─ node (table inet podnet-svc, routes /32 per pod, proxy ARP)
    out (198.18.0.100)  ──┘        node IP 198.18.0.11 on the link to `out`

Pods are wired Calico-style: /32 (/128) addresses, default route via 169.254.1.1
(fe80::1) with proxy ARP on the node's end. Backends are tiny Python servers that answer
every TCP connection and UDP datagram with "<name> <peer address>". PIDs are kept and
killed in teardown; the namespaces are deleted even when a test fails.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

NODE_IP4, NODE_IP6 = "198.18.0.11", "fd00:198:18::11"
OUT_IP4, OUT_IP6 = "198.18.0.100", "fd00:198:18::100"

SERVER = textwrap.dedent('''
    import socket, sys, threading
    name, tcp_ports, udp_ports = sys.argv[1], sys.argv[2], sys.argv[3]
    sctp_ports = sys.argv[4] if len(sys.argv) > 4 else ""
    def peer(a):
        return a[0].removeprefix("::ffff:")
    def tcp(port, proto=0):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, proto)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(512)
        return s
    def serve_tcp(s):
        while True:
            c, a = s.accept()
            try:
                c.sendall(f"{name} {peer(a)}\\n".encode())
            finally:
                c.close()
    def serve_udp(s):
        while True:
            data, a = s.recvfrom(2048)
            s.sendto(f"{name} {peer(a)}\\n".encode(), a)
    socks = [tcp(int(p)) for p in tcp_ports.split(",") if p]
    socks += [tcp(int(p), socket.IPPROTO_SCTP) for p in sctp_ports.split(",") if p]
    for s in socks:
        threading.Thread(target=serve_tcp, args=(s,), daemon=True).start()
    for p in [int(p) for p in udp_ports.split(",") if p]:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(("::", p))
        threading.Thread(target=serve_udp, args=(u,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
''')

CLIENT = textwrap.dedent('''
    import json, socket, sys, time
    ip, port, proto, n, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    sport = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    out, times = [], []
    for _ in range(n):
        t = time.perf_counter()
        try:
            if proto in ("tcp", "sctp"):
                s = socket.socket(fam, socket.SOCK_STREAM, socket.IPPROTO_SCTP if proto == "sctp" else 0)
                s.settimeout(timeout)
                s.connect((ip, port))
                times.append(time.perf_counter() - t)
                out.append(s.makefile().readline().strip())
            else:
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if sport:
                    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", sport))
                s.settimeout(timeout)
                s.connect((ip, port))
                s.send(b"hi")
                out.append(s.recv(2048).decode().strip())
                times.append(time.perf_counter() - t)
            s.close()
        except ConnectionRefusedError:
            out.append("refused")
        except (socket.timeout, TimeoutError):
            out.append("timeout")
        except OSError as e:
            out.append(f"error {e.errno}")
    print(json.dumps({"answers": out, "times": times}))
''')


def sh(*argv: str, input: str | None = None, check: bool = True) -> str:
    cp = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {cp.stderr.strip()}")
    return cp.stdout


@dataclass
class SvcTopo:
    prefix: str  # every namespace is <prefix>-<name>
    backends: int = 3
    pods: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (ip4, ip6)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def node(self) -> str:
        return self.ns("node")

    def all_ns(self) -> list[str]:
        pods = ["client", *(f"b{i}" for i in range(1, self.backends + 1))]
        return [self.node, self.ns("out"), *(self.ns(p) for p in pods)]

    def build(self) -> "SvcTopo":
        self.pods = {"client": ("10.244.1.2", "fd00:10:244:1::2")}
        for i in range(1, self.backends + 1):
            self.pods[f"b{i}"] = (f"10.244.1.{10 + i}", f"fd00:10:244:1::{10 + i:x}")
        node = self.node
        sh("ip", "netns", "add", node)
        self.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        sh("ip", "-n", node, "link", "set", "lo", "up")
        for pod, (ip4, ip6) in self.pods.items():
            self._pod(pod, ip4, ip6)
        out = self.ns("out")
        sh("ip", "netns", "add", out)
        sh("ip", "-n", node, "link", "add", "v-out", "type", "veth", "peer", "name", "eth0", "netns", out)
        sh("ip", "-n", node, "addr", "add", f"{NODE_IP4}/24", "dev", "v-out")
        sh("ip", "-n", node, "addr", "add", f"{NODE_IP6}/64", "dev", "v-out", "nodad")
        sh("ip", "-n", out, "addr", "add", f"{OUT_IP4}/24", "dev", "eth0")
        sh("ip", "-n", out, "addr", "add", f"{OUT_IP6}/64", "dev", "eth0", "nodad")
        for n in (node, out):
            sh("ip", "-n", n, "link", "set", "lo" if n == out else "v-out", "up")
        sh("ip", "-n", out, "link", "set", "eth0", "up")
        # a default route: proxy ARP answers for 169.254.1.1 only when the node can route
        # it, and the node's own traffic to a VIP needs a route before NAT rewrites it
        sh("ip", "-n", node, "route", "add", "default", "via", OUT_IP4, "dev", "v-out")
        sh("ip", "-n", node, "-6", "route", "add", "default", "via", OUT_IP6, "dev", "v-out")
        return self

    def _pod(self, pod: str, ip4: str, ip6: str) -> None:
        ns, node, veth = self.ns(pod), self.node, f"v-{pod}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip4}/32", "dev", "eth0")
        sh("ip", "-n", ns, "-6", "addr", "add", f"{ip6}/128", "dev", "eth0", "nodad")
        sh("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        sh("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        sh("ip", "-n", ns, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
        sh("ip", "-n", node, "link", "set", veth, "up")
        self.run(node, "sysctl", "-qw", f"net.ipv4.conf.{veth}.proxy_arp=1",
                 f"net.ipv4.neigh.{veth}.proxy_delay=0")
        sh("ip", "-n", node, "-6", "addr", "add", "fe80::1/64", "dev", veth, "nodad")
        sh("ip", "-n", node, "route", "add", f"{ip4}/32", "dev", veth)
        sh("ip", "-n", node, "-6", "route", "add", f"{ip6}/128", "dev", veth)

    def run(self, ns: str, *argv: str) -> str:
        return sh("ip", "netns", "exec", ns, *argv)

    def start_backend(self, pod: str, tcp: str = "8080", udp: str = "5353", sctp: str = "") -> None:
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(pod), sys.executable, "-c", SERVER,
                              pod, tcp, udp, sctp], stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout and p.stdout.readline().strip() == "ready", f"backend {pod} did not start"

    def connect(self, ns: str, ip: str, port: int, proto: str = "tcp", n: int = 1,
                timeout: float = 3.0, sport: int = 0) -> dict[str, list]:
        out = sh("ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, ip, str(port), proto,
                 str(n), str(timeout), str(sport))
        return json.loads(out)

    def answers(self, pod: str, ip: str, port: int, proto: str = "tcp", n: int = 1,
                sport: int = 0) -> list[str]:
        return self.connect(self.ns(pod), ip, port, proto, n, sport=sport)["answers"]

    def teardown(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs.clear()
        existing = set(sh("ip", "netns", "list", check=False).split())
        for ns in self.all_ns():
            if ns in existing:
                sh("ip", "netns", "del", ns, check=False)
