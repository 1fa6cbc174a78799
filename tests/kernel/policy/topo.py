"""A one-node topology for the policy kernel tests, built as the CNI plugin would wire pods.

Node netns `<prefix>-node` (forwarding on); one netns per pod `<prefix>-<ns>-<pod>` whose
eth0 pairs with host veth `pn<ns><pod>` in the node: the pod has its /32 and /128, a
default route via 169.254.1.1 (proxy ARP on the host side) and via fe80::1 for IPv6;
the node routes each pod address to its veth. An "outside" netns `<prefix>-out` sits on
203.0.113.0/24 and fd00:203:113::/64 with no route to the pod CIDRs. Every pod and the
outside run tests/kernel/policy/pod_server.py on ports 80 and 81 (PIDs kept, killed in
`destroy`). Nothing here touches the machine's own namespace.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from podnet.api.objects import IPPool, Pod, Resource
from podnet.calc.policy.compile import IFACE_ANNOTATION

SERVER = Path(__file__).with_name("pod_server.py")
OUTSIDE_V4, OUTSIDE_V6 = "203.0.113.10", "fd00:203:113::10"
NODE_UP_V4, NODE_UP_V6 = "203.0.113.1", "fd00:203:113::1"


def pool(name: str, cidr: str, nat: bool) -> IPPool:
    return IPPool({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                   "spec": {"cidr": cidr, "natOutgoing": nat}})


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(list(argv), capture_output=True, text=True)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {cp.stderr.strip()}")
    return cp


def nsx(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


def batch(ns: str | None, cmds: list[str]) -> None:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    cp = subprocess.run(argv, input="\n".join(cmds) + "\n", capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(f"ip -batch in {ns}: {cp.stderr.strip()}")


def sysctl(ns: str, *kv: str) -> None:
    nsx(ns, "sysctl", "-q", "-w", *kv)


@dataclass
class Topology:
    prefix: str
    node: str = ""
    outside: str = ""
    pods: dict[str, str] = field(default_factory=dict)  # "ns/name" -> netns
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)

    def pod_netns(self, label: str) -> str:
        return self.pods[label]

    def destroy(self) -> None:
        for p in self.servers:
            p.terminate()
        for p in self.servers:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in reversed(self.netns):
            sh("ip", "netns", "del", ns, check=False)


def _serve(t: Topology, ns: str) -> None:
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(SERVER), "80", "81"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    t.servers.append(p)


def build(prefix: str, pods: list[Pod]) -> tuple[Topology, list[Resource]]:
    """Build the topology; returns it and the pods annotated with their host veth."""
    t = Topology(prefix, node=f"{prefix}-node", outside=f"{prefix}-out")
    try:
        for ns in (t.node, t.outside):
            sh("ip", "netns", "add", ns)
            t.netns.append(ns)
        sysctl(t.node, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        batch(t.node, ["link set lo up", "link add pnup type veth peer name eth0 netns " + t.outside,
                       f"addr add {NODE_UP_V4}/24 dev pnup", f"addr add {NODE_UP_V6}/64 dev pnup nodad",
                       "link set pnup up",
                       # proxy ARP answers only for addresses routed via another interface
                       f"route add default via {OUTSIDE_V4}", f"route add ::/0 via {OUTSIDE_V6}"])
        batch(t.outside, ["link set lo up", f"addr add {OUTSIDE_V4}/24 dev eth0",
                          f"addr add {OUTSIDE_V6}/64 dev eth0 nodad", "link set eth0 up"])
        _serve(t, t.outside)
        out: list[Resource] = []
        node_cmds: list[str] = []
        for p in pods:
            pns = f"{prefix}-{p.namespace}-{p.name}"
            veth = f"pn{p.namespace}{p.name}"[:15]
            sh("ip", "netns", "add", pns)
            t.netns.append(pns)
            t.pods[f"{p.namespace}/{p.name}"] = pns
            v4 = next(a for a in p.pod_ips if ":" not in a)
            v6 = next(a for a in p.pod_ips if ":" in a)
            batch(t.node, [f"link add {veth} type veth peer name eth0 netns {pns}",
                           f"addr add fe80::1/64 dev {veth} nodad", f"link set {veth} up"])
            sysctl(t.node, f"net.ipv4.conf.{veth}.proxy_arp=1", f"net.ipv4.neigh.{veth}.proxy_delay=0")
            node_cmds += [f"route add {v4}/32 dev {veth}", f"route add {v6}/128 dev {veth}"]
            batch(pns, ["link set lo up", f"addr add {v4}/32 dev eth0", f"addr add {v6}/128 dev eth0 nodad",
                        "link set eth0 up", "route add 169.254.1.1 dev eth0 scope link",
                        "route add default via 169.254.1.1 dev eth0",
                        "route add ::/0 via fe80::1 dev eth0"])
            _serve(t, pns)
            ann = dict(p.annotations)
            ann[IFACE_ANNOTATION] = veth
            out.append(p.with_metadata(annotations=ann))
        batch(t.node, node_cmds)
        for p in t.servers:  # wait until every server has bound its sockets
            assert p.stdout is not None
            if p.stdout.readline().strip() != b"ready":
                raise RuntimeError("a pod server did not start")
        return t, out
    except BaseException:
        t.destroy()
        raise
