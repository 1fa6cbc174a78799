"""Ask the kernel: send one real, traced packet and ask each namespace for its routes.

`watch_and_send` puts a temporary table (`inet pntrace<pid>`: a prerouting chain at
priority -400, before conntrack and NAT, and an empty postrouting chain last) into every node, the router and the outside
world, marking the packets of the probe's flow with `meta nftrace set 1`; runs
`nft monitor trace` in each of those namespaces; opens a connection from the source
pod's namespace with a fixed source port; then stops the monitors and removes the
tables (always, also on error). `route_get` runs `ip -j route get`. Only the lab's own
namespaces are touched.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Iterable

from podnet.calc.routes import VXLAN_PORT
from podnet.dataplane.bird.daemon import birdc, parse_route_all
from podnet.dataplane.net.netns import netns_argv, run
from podnet.dataplane.net.sysctl import call_in_netns
from podnet.trace.nftrace import PacketTrace, parse

SETTLE = 3.0  # at most this long for every `nft monitor` to subscribe
NETLINK_NETFILTER = 12
NFNLGRP_NFTRACE_BIT = 1 << (9 - 1)  # group 9 (linux/netfilter/nfnetlink.h), bit group-1


@dataclass
class Observation:
    sport: int
    outcome: str  # connected | refused | timeout | unreachable | error: ...
    traces: dict[str, list[PacketTrace]] = field(default_factory=dict)  # netns -> packets
    macs: dict[str, str] = field(default_factory=dict)  # "netns/dev" -> MAC
    raw: dict[str, str] = field(default_factory=dict)


def table_name() -> str:
    return f"pntrace{os.getpid()}"


# Inside a VXLAN packet, from the outer UDP header: UDP (8), VXLAN (8), the inner
# Ethernet header (14; its type at byte 28), the inner IP header (20 or 40), then the
# inner ports. In bits, for nft's raw `@th,offset,length` payload match.
VXLAN_INNER_TYPE = (8 + 8 + 12) * 8
VXLAN_INNER_PORTS = {4: (8 + 8 + 14 + 20) * 8, 6: (8 + 8 + 14 + 40) * 8}
ETHERTYPE = {4: "0x0800", 6: "0x86dd"}


def _vxlan_rules(family: int, sport: int) -> str:
    """Rules marking VXLAN packets that carry the probe's flow (a router between racks
    sees only the outer packet), by the probe's port in the inner transport header."""
    at = VXLAN_INNER_PORTS[family]
    head = f"  udp dport {VXLAN_PORT} @th,{VXLAN_INNER_TYPE},16 {ETHERTYPE[family]}"
    return f"{head} @th,{at},16 {sport} meta nftrace set 1\n{head} @th,{at + 16},16 {sport} meta nftrace set 1\n"


def _table_script(name: str, proto: str, sport: int, vxlan_family: int | None = None) -> str:
    p = proto.lower()
    return (f"table inet {name} {{\n chain pre {{ type filter hook prerouting priority -400; policy accept;\n"
            f"  meta l4proto {p} th sport {sport} meta nftrace set 1\n"
            f"  meta l4proto {p} th dport {sport} meta nftrace set 1\n"
            + (_vxlan_rules(vxlan_family, sport) if vxlan_family else "") + " }\n"
            # an empty chain last in postrouting: its `packet:` line shows the device the
            # packet leaves by, also in namespaces without any other table (the router)
            f" chain post {{ type filter hook postrouting priority 500; policy accept; }}\n}}\n")


def read_macs(netns_devs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ns in sorted({n for n, _ in netns_devs}):
        cp = run(ns, ["ip", "-j", "link"], check=False)
        try:
            links = json.loads(cp.stdout or "[]")
        except ValueError:
            continue
        for link in links:
            if link.get("address"):
                out[f"{ns}/{link['ifname']}"] = link["address"]
    return out


def subscribed(pid: int) -> bool:
    """Whether a netfilter netlink socket of the monitor's namespace listens to trace
    events (its /proc/<pid>/net/netlink shows the group)."""
    try:
        lines = open(f"/proc/{pid}/net/netlink").read().splitlines()[1:]
        fds = os.listdir(f"/proc/{pid}/fd")
        own = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
    except OSError:
        return False
    for ln in lines:
        f = ln.split()
        # its own socket (by inode), not another monitor's in the same namespace
        if len(f) > 9 and f[1] == str(NETLINK_NETFILTER) and int(f[3], 16) & NFNLGRP_NFTRACE_BIT \
                and f"socket:[{f[9]}]" in own:
            return True
    return False


def wait_subscribed(pids: list[int], timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if not subscribed(p)]
        if pending:
            time.sleep(0.02)


def probe(netns: str, family: int, src: str, dst: str, port: int, proto: str, sport: int,
          timeout: float) -> str:
    def body() -> str:
        fam = socket.AF_INET6 if family == 6 else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM
        with socket.socket(fam, kind) as s:
            s.settimeout(timeout)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((src, sport))
            try:
                if proto == "TCP":
                    s.connect((dst, port))
                    return "connected"
                # a connected UDP socket: an ICMP port unreachable comes back as ECONNREFUSED
                s.connect((dst, port))
                s.send(b"podnet trace\n")
                s.recv(4096)
                return "connected"
            except socket.timeout:
                return "timeout"
            except ConnectionRefusedError:
                return "refused"
            except OSError as e:
                if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                    return "unreachable"
                return f"error: {e.strerror or e}"
    return call_in_netns(netns, body)


def watch_and_send(watch: list[str], src_netns: str, family: int, src: str, dst: str, port: int,
                   proto: str, sport: int | None = None, timeout: float = 1.0,
                   vxlan_in: Iterable[str] = ()) -> Observation:
    """`vxlan_in`: namespaces that forward VXLAN packets without opening them (the router
    between racks): there the probe's packets are also marked inside their VXLAN wrapping."""
    sport = sport or random.randint(42000, 59999)
    name = table_name()
    vx = set(vxlan_in)
    installed: list[str] = []
    monitors: list[tuple[str, subprocess.Popen[str]]] = []
    obs = Observation(sport, "")
    try:
        for ns in watch:
            run(ns, ["nft", "-f", "-"], input=_table_script(name, proto, sport, family if ns in vx else None))
            installed.append(ns)
        for ns in watch:
            monitors.append((ns, subprocess.Popen(netns_argv(ns, ["nft", "monitor", "trace"]),
                                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                  text=True)))
        wait_subscribed([p.pid for _, p in monitors])
        obs.outcome = probe(src_netns, family, src, dst, port, proto, sport, timeout)
        time.sleep(0.2)  # let the last events of the reply reach the monitors
    finally:
        for ns, p in monitors:
            p.terminate()
            try:
                out, _ = p.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            obs.raw[ns] = out or ""
            obs.traces[ns] = parse(out or "")
        for ns in installed:
            run(ns, ["nft", "delete", "table", "inet", name], check=False)
    return obs


def dns_lookup(netns: str, name: str, family: int) -> list[str] | str:
    """What the pod's resolver (its resolv.conf, search path included) answers: the
    addresses, or an error text."""
    rr = "A" if family == 4 else "AAAA"
    cp = run(netns, ["dig", "+short", "+search", "+time=1", "+tries=2", name, rr], check=False)
    if cp.returncode != 0:
        said = (cp.stdout + cp.stderr).strip().splitlines()
        return said[-1] if said else f"dig exit {cp.returncode}"
    out = []
    for ln in cp.stdout.split():
        try:
            out.append(str(ipaddress.ip_address(ln)))
        except ValueError:
            continue  # a CNAME on the way
    return out


def route_get(netns: str, dst: str, src: str | None = None, iif: str | None = None) -> dict[str, object]:
    """The kernel's answer as `ip -j route get` gives it, or {"error": "..."}."""
    argv = ["ip", "-j", "route", "get", dst]
    if src and iif:
        argv += ["from", src, "iif", iif]
    cp = run(netns, argv, check=False)
    if cp.returncode != 0:
        return {"error": (cp.stderr or "").strip().replace("RTNETLINK answers: ", "") or f"exit {cp.returncode}"}
    try:
        got = json.loads(cp.stdout)
    except ValueError:
        return {"error": f"unreadable: {cp.stdout[:100]}"}
    return got[0] if got else {"error": "no answer"}


def bgp_route(ctl: str | None, netns: str, dst: str) -> dict[str, object]:
    """What the kernel of `netns` (`ip route get fibmatch`: the matching route, its
    protocol) and the BIRD there (`birdc show route for DST all`: the session it came
    over, the BGP next hop) say of the route to `dst`."""
    cp = run(netns, ["ip", "-j", "route", "get", "fibmatch", dst], check=False)
    try:
        got = json.loads(cp.stdout)[0] if cp.returncode == 0 else {}
    except (ValueError, IndexError):
        got = {}
    if not got:
        return {"error": f"no kernel route to {dst}: {(cp.stderr or '').strip()}"}
    dst_net = str(got.get("dst", ""))
    if dst_net and "/" not in dst_net and dst_net != "default":
        dst_net += "/32" if ":" not in dst_net else "/128"
    out: dict[str, object] = {"prefix": dst_net, "proto": got.get("protocol", "")}
    if not ctl:
        return out | {"session": "?", "next_hop": "?"}
    bc = birdc(ctl, f"show route for {dst} all")
    if bc.returncode != 0:
        return {"error": f"birdc -s {ctl}: {(bc.stderr or bc.stdout).strip()}"}
    said = parse_route_all(bc.stdout)
    return out | {"session": said.get("session", "(none)"), "next_hop": said.get("next_hop", "(none)"),
                  "as_path": said.get("as_path", "")}
