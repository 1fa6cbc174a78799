"""STATUS's look at the node's own data plane (the namespace the plugin runs in): what
cuts pods of a network that are already attached off is the spec's code 51, which is
worse than IPAM's 50 (no new pods, existing ones fine).

Cheap on purpose (a runtime calls STATUS every few seconds): one `ip -j link` for the
host ends, /proc for their routes and the forwarding sysctls.
"""
from __future__ import annotations

import time

from podnet.cni.errors import NOT_AVAILABLE_LIMITED, CniError
from podnet.dataplane.net.podwire import host_ends

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
IPV6_FORWARDING = "/proc/sys/net/ipv6/conf/all/forwarding"
ROUTES_V4 = "/proc/thread-self/net/route"
ROUTES_V6 = "/proc/thread-self/net/ipv6_route"
RTF_LOCAL, RTF_ANYCAST = 0x80000000, 0x00100000
# An ADD running right now has its host end aliased a moment before its routes and the
# node's forwarding are in place: a problem counts only if it is still there this much later.
RECHECK_SECONDS = 0.2
SHOWN = 3  # problems named in msg; the rest are counted


def check_node(network: str) -> None:
    """Raise code 51 if pods of `network` attached on this node are cut off."""
    found = problems(network)
    if found:
        time.sleep(RECHECK_SECONDS)
        found = problems(network)
    if found:
        whats = [w for w, _ in found]
        msg = "; ".join(whats[:SHOWN]) + (f" (and {len(whats) - SHOWN} more)" if len(whats) > SHOWN else "")
        fixes = list(dict.fromkeys(f for _, f in found))
        raise CniError(NOT_AVAILABLE_LIMITED, msg, "; ".join(fixes))


def problems(network: str) -> list[tuple[str, str]]:
    """(what is wrong, how to fix it) for every pod of `network` on this node that has lost
    its way out."""
    ends = host_ends(network)
    if not ends:
        return []
    v4, v6 = _route_devices_v4(), _route_devices_v6()
    out = []
    for fam, path, sysctl, devs in (("IPv4", IP_FORWARD, "net.ipv4.ip_forward", v4),
                                    ("IPv6", IPV6_FORWARDING, "net.ipv6.conf.all.forwarding", v6)):
        pods = [n for n in ends if n in devs]
        if pods and _read(path) == "0":
            out.append((f"{sysctl} is 0 in the node's network namespace: {len(pods)} {fam} "
                        f"pod(s) of network {network!r} here reach nothing beyond the node",
                        f"sysctl -w {sysctl}=1 in the node's network namespace"))
    for name, (cid, ifname, up) in sorted(ends.items(), key=lambda e: e[1]):
        if not up:
            out.append((f"host end {name} of pod {cid}/{ifname} is down",
                        "DEL and ADD those pods again (taking a link down flushes its routes, "
                        "so `ip link set <host end> up` alone does not bring a pod back)"))
        elif name not in v4 and name not in v6:
            out.append((f"host end {name} of pod {cid}/{ifname} has no route to the pod",
                        "DEL and ADD those pods again"))
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None  # family disabled in this namespace: nothing to forward


def _lines(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.split() for line in f]
    except OSError:
        return []


def _route_devices_v4() -> set[str]:
    """Devices that carry an IPv4 route of the main table."""
    return {cols[0] for cols in _lines(ROUTES_V4)[1:] if cols}


def _route_devices_v6() -> set[str]:
    """Devices that carry a /128 route to a non-link-local address (a pod's), not local
    or anycast entries of the node itself."""
    devs = set()
    for cols in _lines(ROUTES_V6):
        if len(cols) < 10 or cols[1] != "80" or int(cols[0][:4], 16) & 0xFFC0 == 0xFE80:
            continue
        if not int(cols[8], 16) & (RTF_LOCAL | RTF_ANYCAST):
            devs.add(cols[9])
    return devs
