"""A pod's wiring, the kernel side of a CNI ADD and DEL: a veth pair, /32 and /128 routes,
static neighbours in the pod. Two ways of doing the same, behind one interface
(`PodWiring`): `IpWiring` through `ip -batch -` (one process per namespace, for the
one-shot plugin binary) and `NetlinkWiring` (podwire_netlink.py, over rtnl.py's sockets, for
the long-lived CNI daemon). The CNI picks one and passes it in; failures are `WireError`,
which the CNI maps to its error codes at its edge.

Layout (Calico's routed model): the host end lives in the namespace the plugin runs in
(the node), is named `pn` + a hash of (containerID, ifname) and has the fixed MAC
ee:ee:ee:ee:ee:ee, hence the link-local fe80::ecee:eeff:feee:eeee. The pod end gets the
pod's addresses as /32 and /128, a default route via 169.254.1.1 (proxy ARP on the host
end) and via the host end's link-local address, plus permanent neighbour entries for
both gateways so the first packet waits on neither ARP nor IPv6 DAD/ND (the host end's
MAC is ours and never changes).

The node resolves the pod's addresses by ARP and ND like any neighbour, and pins none
(issue 12 §5): the pod's MAC is not ours to know for good, since a later plugin of the
chain (the reference `tuning` with a `mac`) may change it after our ADD, and a permanent
entry with the old MAC cut the node off from the pod. That costs the node's first packet
to a new pod one ARP/ND exchange over the veth (~0.01 ms). For ND to start at once, the
host end skips DAD (accept_dad 0 before its carrier is up, as Calico does): a tentative
link-local address cannot send neighbour solicitations, and DAD takes ~1-2 s.
"""
from __future__ import annotations

import hashlib
import os
from typing import NamedTuple, Protocol, Sequence

from podnet.dataplane.net import sysctl
from podnet.dataplane.net.links import IpBatch, delete_link, ip_json
from podnet.dataplane.net.netns import CommandError


HOST_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY_V4 = "169.254.1.1"
GATEWAY_V6 = "fe80::ecee:eeff:feee:eeee"  # EUI-64 link-local of HOST_MAC
ALIAS_PREFIX = "podnet:"  # host end's ifalias: podnet:<network>/<containerID>/<ifname>, for GC


class WireError(Exception):
    """The kernel refused a step: `msg` says which, `details` what the kernel said."""

    def __init__(self, msg: str, details: str = ""):
        super().__init__(msg, details)
        self.msg, self.details = msg, details

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg


class Wired(NamedTuple):
    host: str  # the host end's name
    default_routes: frozenset[int]  # families whose default route we added


class PodWiring(Protocol):
    def setup(self, container_id: str, ifname: str, netns: str, mtu: int, addrs: Sequence[str],
              network: str = "") -> Wired:
        """Create and wire the pair. `addrs` are bare IPs. The pod's default route goes via
        the new interface only for a family that has none yet (the IPAM conventions: a pod
        with another network's interface keeps that one's default route). On failure the
        host end (and with it the pod end) is removed again. Raises WireError."""

    def delete_link(self, host: str) -> bool:
        """Remove the host end (the kernel removes its peer and routes with it); False when
        it was not there. Raises WireError."""

    def drain(self) -> None:
        """Wait for deletes still under way (before the process exits)."""


def host_ifname(container_id: str, ifname: str) -> str:
    """Stable, <= 15 chars, recognisably ours (`pn` prefix)."""
    return "pn" + hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:11]


def pod_mac(container_id: str, ifname: str) -> str:
    """Locally administered unicast, derived from the attachment so a re-ADD is identical."""
    h = hashlib.sha256(f"mac/{container_id}/{ifname}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0A, *h[:5]))


def ip_batch(netns: str | None, lines: Sequence[str], what: str) -> None:
    batch = IpBatch(netns)
    batch.lines = list(lines)
    try:
        batch.run()
    except CommandError as e:
        raise WireError(f"{what} failed", e.stderr.strip() or f"exit {e.rc}") from None


class IpWiring:
    """Through `ip -batch -`: what the one-shot plugin binary does."""

    def setup(self, container_id: str, ifname: str, netns: str, mtu: int, addrs: Sequence[str],
              network: str = "") -> Wired:
        return _ip_setup(container_id, ifname, netns, mtu, addrs, network)

    def delete_link(self, host: str) -> bool:
        return _ip_delete_link(host)

    def drain(self) -> None:
        pass


def _ip_setup(container_id: str, ifname: str, netns: str, mtu: int, addrs: Sequence[str],
              network: str) -> Wired:
    host = host_ifname(container_id, ifname)
    mac = pod_mac(container_id, ifname)
    v4 = [a for a in addrs if ":" not in a]
    v6 = [a for a in addrs if ":" in a]
    host_lines = [f"link add {host} mtu {mtu} address {HOST_MAC} type veth peer name {ifname} "
                  f"mtu {mtu} address {mac} netns {netns}",
                  f"link set {host} alias {ALIAS_PREFIX}{network}/{container_id}/{ifname}",
                  f"link set {host} up"]
    host_lines += [f"route add {a}/32 dev {host} scope link" for a in v4]
    host_lines += [f"route add {a}/128 dev {host}" for a in v6]
    pod_lines = [f"addr add {a}/32 dev {ifname}" for a in v4]
    pod_lines += [f"addr add {a}/128 dev {ifname} nodad" for a in v6]
    pod_lines.append(f"link set {ifname} up")
    defaults = frozenset(f for f, a in ((4, v4), (6, v6)) if a and not has_default_route(netns, f))
    if v4:
        pod_lines.append(f"neigh replace {GATEWAY_V4} lladdr {HOST_MAC} dev {ifname} nud permanent")
        if 4 in defaults:  # the gateway's route is there for the default route only
            pod_lines += [f"route add {GATEWAY_V4}/32 dev {ifname} scope link",
                          f"route add 0.0.0.0/0 via {GATEWAY_V4} dev {ifname}"]
    if v6:
        pod_lines.append(f"neigh replace {GATEWAY_V6} lladdr {HOST_MAC} dev {ifname} nud permanent")
        if 6 in defaults:
            pod_lines.append(f"route add ::/0 via {GATEWAY_V6} dev {ifname}")
    try:
        ip_batch(None, host_lines, f"creating veth {host} <-> {ifname} in {netns}")
    except WireError as e:
        if "-:1" not in e.details:  # the pair exists (line 1 passed): undo it
            _ip_delete_link(host)
        elif "File exists" in e.details:
            e.msg += f" ({host} or {ifname} in {netns} already exists: ADD twice without DEL?)"
        raise
    try:
        host_end_no_dad(host, bool(v6))  # the pod end is still down: no carrier, no link-local yet
        ip_batch(netns, pod_lines, f"configuring {ifname} in {netns}")
        pod_end_sysctls(netns, ifname, bool(v4), bool(v6))
        host_end_sysctls(host)
        node_sysctls(bool(v4), bool(v6))
    except BaseException:
        _ip_delete_link(host)
        raise
    return Wired(host, defaults)


def has_default_route(netns: str, family: int) -> bool:
    try:
        return bool(ip_json(netns, f"-{family}", "route", "show", "default"))
    except CommandError:
        return False


def write_sysctl(path: str, value: str) -> None:
    try:
        sysctl.write_sysctl(path, value)
    except OSError as e:
        raise WireError(f"cannot set sysctl {path[len('/proc/sys/'):].replace('/', '.')}", str(e)) from None


def host_end_sysctls(host: str) -> None:
    """Proxy ARP on the host end, so it answers for 169.254.1.1 should the pod's static
    neighbour entry ever be flushed."""
    write_sysctl(f"/proc/sys/net/ipv4/conf/{host}/proxy_arp", "1")
    write_sysctl(f"/proc/sys/net/ipv4/neigh/{host}/proxy_delay", "0")


def pod_end_sysctls(netns: str, ifname: str, v4: bool, v6: bool) -> None:
    """The pod's interface announces a change of its MAC (arp_notify: gratuitous ARP;
    ndisc_notify: unsolicited neighbour advertisement), so the node's neighbour entry
    follows when a later plugin of the chain (`tuning` with a `mac`) changes it, also
    if the node already talked to the pod: else ~30 s pass before the node re-resolves."""
    from podnet.dataplane.net.rtnl import open_in_netns  # not at import: the binary's start-up
    files = ([f"/proc/sys/net/ipv4/conf/{ifname}/arp_notify"] if v4 else []) + \
        ([f"/proc/sys/net/ipv6/conf/{ifname}/ndisc_notify"] if v6 else [])
    try:
        fds = open_in_netns(netns, files)
    except OSError as e:
        raise WireError(f"cannot set the notify sysctls of {ifname} in {netns}", str(e)) from None
    try:
        for fd in fds:
            os.write(fd, b"1")
    except OSError as e:
        raise WireError(f"cannot set the notify sysctls of {ifname} in {netns}", str(e)) from None
    finally:
        for fd in fds:
            os.close(fd)


def host_end_no_dad(host: str, v6: bool) -> None:
    """No DAD on the host end's link-local address, so the node can send neighbour
    solicitations to the pod from the start (with DAD, for ~1-2 s it cannot). Must run
    before the pod end comes up: the address is made when the pair gets its carrier."""
    if v6:
        write_sysctl(f"/proc/sys/net/ipv6/conf/{host}/accept_dad", "0")


def node_sysctls(v4: bool, v6: bool) -> None:
    """In the namespace the plugin runs in (the node): forwarding."""
    if v4:
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    if v6:
        write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")


def _ip_delete_link(host: str) -> bool:
    try:
        return delete_link(None, host)
    except CommandError as e:
        raise WireError(f"deleting {host} failed", e.stderr.strip()) from None


def host_ends(network: str) -> dict[str, tuple[str, str, bool]]:
    """Host ends of `network` in this namespace: name -> (containerID, ifname, admin up)."""
    try:
        links = ip_json(None, "link", "show", "type", "veth")
    except CommandError:
        links = []
    out = {}
    for link in links:
        alias = str(link.get("ifalias") or "")
        if alias.startswith(ALIAS_PREFIX):
            parts = alias[len(ALIAS_PREFIX):].split("/")
            if len(parts) == 3 and parts[0] == network:
                out[str(link.get("ifname"))] = (parts[1], parts[2], "UP" in (link.get("flags") or ()))
    return out


def our_links(network: str) -> dict[str, tuple[str, str]]:
    """Host ends of `network` in this namespace: name -> (containerID, ifname)."""
    return {name: (cid, ifname) for name, (cid, ifname, _) in host_ends(network).items()}
