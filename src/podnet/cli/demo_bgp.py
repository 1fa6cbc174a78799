"""`podnet demo --routing bgp`'s own step: the router learns a node's block over BGP and
the outside world reaches a pod by its own address, no NAT either way (issue 21 §3).

Every command is the real one, shown as a user would type it (`ip netns exec` into the
lab's router and outside-world namespaces, where BIRD's routes and the echo server are).
"""
from __future__ import annotations

import shlex
import subprocess
import time
from typing import TYPE_CHECKING

from rich.markup import escape

from podnet.api.defaults import LAB_PREFIX

if TYPE_CHECKING:
    from podnet.cli.demo import Demo

PUBLIC_BLOCK = "10.245.0.0/28"
PUBLIC_IP = "10.245.0.5"
OUTSIDE_ECHO = "203.0.113.10"  # the outside world's address (lab/topology.py)
PUBLIC = f"""apiVersion: podnet.io/v1
kind: IPPool
metadata: {{name: public}}
spec: {{cidr: 10.245.0.0/24, blockSize: 28, natOutgoing: false}}
---
apiVersion: v1
kind: Pod
metadata:
  name: pub
  namespace: shop
  annotations: {{podnet.io/ipAddrs: '["{PUBLIC_IP}"]'}}
spec:
  nodeName: n2
  containers:
  - {{name: srv, image: podnet/serve, ports: [{{containerPort: 8080}}]}}
"""


def sh(demo: "Demo", argv: list[str], show: bool = True) -> subprocess.CompletedProcess[str]:
    """A command outside podnet (ip, curl), shown and run as a user would."""
    if show:
        demo.con.print(f"[bold cyan]$ {escape(shlex.join(argv))}[/]")
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if show and (cp.stdout + cp.stderr).strip():
        demo.con.print((cp.stdout + cp.stderr).rstrip(), markup=False, highlight=False, soft_wrap=True)
    return cp


def bgp_step(demo: "Demo", n: int) -> None:
    demo.step(n, "Routed, not hidden: the router learns where pods live (BGP)",
              "pod IPs are routable: each node announces its blocks over BGP (BIRD), "
              "so the network reaches a pod by its own address (Calico's model)")
    rt, out = f"{LAB_PREFIX}{demo.lab}-rt", f"{LAB_PREFIX}{demo.lab}-out"
    status = demo.run(["node", "status", "--router"])
    up = status.stdout.count("Established")
    demo.check(up > 0 and "Active" not in status.stdout and "Connect" not in status.stdout,
               f"{up} BGP sessions established (node to node, and every node with the router)",
               f"not every BGP session is established:\n{status.stdout}")
    demo.run_apply_text(PUBLIC, "a pool whose pods are not NATed, and a pod of it on n2")
    t0 = time.monotonic()
    learned = False
    while time.monotonic() - t0 < 10 and not learned:
        learned = PUBLIC_BLOCK in sh(demo, ["ip", "netns", "exec", rt, "ip", "route", "show", "proto", "bird"],
                                     show=False).stdout
        time.sleep(0.05)
    took = time.monotonic() - t0
    routes = sh(demo, ["ip", "netns", "exec", rt, "ip", "route", "show", "proto", "bird"])
    via = next((ln.split(" via ")[1].split()[0] for ln in routes.stdout.splitlines()
                if ln.startswith(PUBLIC_BLOCK) and " via " in ln), "")
    demo.check(learned and via != "", f"the router learned n2's new block {PUBLIC_BLOCK} over BGP "
               f"within {took:.1f}s, via n2 ({via})", f"the router has no route to {PUBLIC_BLOCK}")
    demo.wait_ready(lambda ps: any(p["metadata"]["name"] == "pub" and _ready(p) for p in ps), "pod pub")
    inbound = sh(demo, ["ip", "netns", "exec", out, "curl", "-s", "--max-time", "3", f"http://{PUBLIC_IP}:8080/"])
    demo.check(inbound.returncode == 0 and inbound.stdout.split()[-1:] == [OUTSIDE_ECHO],
               f"the outside world reached pod pub at {PUBLIC_IP}, which saw the outside's own address",
               f"outside -> {PUBLIC_IP}: {inbound.stdout.strip()!r} (exit {inbound.returncode})")
    outbound = demo.exec_in("shop", "pub", ["curl", "-s", "--max-time", "3", f"http://{OUTSIDE_ECHO}/"])
    demo.check(outbound.returncode == 0 and outbound.stdout.split()[-1:] == [PUBLIC_IP],
               f"and pub reaches the outside with its own address {PUBLIC_IP}: no NAT either way",
               f"pub -> outside: {outbound.stdout.strip()!r} (exit {outbound.returncode})")


def _ready(p: dict[str, object]) -> bool:
    status = p.get("status")
    conds = status.get("conditions") if isinstance(status, dict) else None
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in conds or [])
