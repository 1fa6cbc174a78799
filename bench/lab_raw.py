"""The floor under bench/lab_scale.py: the same pods' kernel objects and listening sockets,
made directly with `ip` and one socket helper, with no control plane at all (needs root).

For N pods on M node namespaces, in as few processes as `ip` allows: one `ip -batch` adds
every namespace; one per node adds each pod's veth pair (the pod end moved into the pod's
namespace as eth0), brings the host ends up and routes each pod's /32 (and /128) to its
veth, as podnet-cni does (proxy ARP by default in the node, which routes everything else
to a stand-in uplink, a veth pair; then one shell per node sets every veth's proxy delay to
0); one per pod sets the pod's
loopback, address(es), link and default routes via 169.254.1.1 (and fe80::1). Then one
helper process enters every pod's namespace in turn and listens on TCP and UDP 8080 there
(one dual-stack socket each, as `podnet serve` does for the lab's pods), and says "ready".
What the lab adds on top (datastore, scheduling, IPAM, the CNI plugin, status writes, the
agents' routes, DNS) is what the ratio lab/floor measures. Names: `pnb-lab-<id>-n<i>` and
`-p<j>`; teardown deletes exactly those.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field

SOCKETS = r'''
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
home = os.open("/proc/self/ns/net", os.O_RDONLY)
keep = []
for ns in sys.argv[1:]:
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {ns}")
    os.close(fd)
    for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET6, typ)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 8080))
        if typ == socket.SOCK_STREAM:
            s.listen(64)
        keep.append(s)
libc.setns(home, CLONE_NEWNET)
print("ready", flush=True)
sys.stdin.read()
'''


def ip_batch(lines: list[str], netns: str | None = None) -> None:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    cp = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(f"ip -batch in {netns}: {cp.stderr.strip()}")


@dataclass
class RawPods:
    prefix: str
    nodes: int
    pods: int
    dual_stack: bool = False
    created: list[str] = field(default_factory=list)
    helper: subprocess.Popen[str] | None = None

    def node(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    def pod(self, j: int) -> str:
        return f"{self.prefix}-p{j}"

    def build(self) -> float:
        """Make everything; seconds until every pod's sockets listen."""
        t0 = time.perf_counter()
        names = [self.node(i) for i in range(self.nodes)] + [self.pod(j) for j in range(self.pods)]
        ip_batch([f"netns add {n}" for n in names])
        self.created = names
        for i in range(self.nodes):
            # proxy ARP answers for 169.254.1.1 only while the node routes it elsewhere
            ip_batch(["link set lo up", "link add up0 type veth peer name up1", "link set up0 up", "link set up1 up",
                      f"addr add 198.18.0.{1 + i}/24 dev up0",
                      "route add default dev up0"], self.node(i))
            subprocess.run(["ip", "netns", "exec", self.node(i), "sysctl", "-qw", "net.ipv4.ip_forward=1",
                            "net.ipv4.conf.default.proxy_arp=1"], check=True)
            ip_batch([cmd for j in range(i, self.pods, self.nodes) for cmd in self._host_side(j)], self.node(i))
            subprocess.run(["ip", "netns", "exec", self.node(i), "sh", "-c",
                            "for f in /proc/sys/net/ipv4/neigh/r*/proxy_delay; do echo 0 > $f; done"], check=True)
        for j in range(self.pods):
            ip_batch(self._pod_side(j), self.pod(j))
        self.helper = subprocess.Popen([sys.executable, "-c", SOCKETS, *(self.pod(j) for j in range(self.pods))],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.helper.stdout is not None
        if self.helper.stdout.readline().strip() != "ready":
            raise RuntimeError("the socket helper did not start")
        return time.perf_counter() - t0

    def _addrs(self, j: int) -> tuple[str, str]:
        return f"10.250.{j // 250}.{1 + j % 250}", f"fd00:250::{j + 1:x}"

    def _host_side(self, j: int) -> list[str]:
        v4, v6 = self._addrs(j)
        out = [f"link add r{j} type veth peer name eth0 netns {self.pod(j)}", f"link set r{j} up",
               f"route add {v4}/32 dev r{j}"]
        return out + ([f"addr add fe80::1/64 dev r{j} nodad", f"route add {v6}/128 dev r{j}"] if self.dual_stack else [])

    def _pod_side(self, j: int) -> list[str]:
        v4, v6 = self._addrs(j)
        out = ["link set lo up", f"addr add {v4}/32 dev eth0", "link set eth0 up",
               "route add 169.254.1.1 dev eth0 scope link", "route add default via 169.254.1.1 dev eth0"]
        return out + ([f"addr add {v6}/128 dev eth0 nodad", "route add ::/0 via fe80::1 dev eth0"]
                      if self.dual_stack else [])

    def helper_rss_mib(self) -> float:
        if self.helper is None:
            return 0.0
        for line in open(f"/proc/{self.helper.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def teardown(self) -> float:
        """Stop the helper, delete every namespace made here; seconds taken."""
        t0 = time.perf_counter()
        if self.helper is not None:
            self.helper.kill()
            self.helper.wait()
            self.helper = None
        if self.created:
            subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in self.created),
                           capture_output=True, text=True)
            self.created = []
        return time.perf_counter() - t0
