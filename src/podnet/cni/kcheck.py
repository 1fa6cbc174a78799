"""CHECK for podnet-cni: does the kernel still hold what prevResult says? Read-only.

Reads `ip -j` output of the pod and node namespaces and fails with the first precise
difference. Routes added later by chained plugins are tolerated (SPEC.md CHECK), our
default route is checked only while the result still lists it, and only the addresses
prevResult puts on our interface are ours to check.
"""
from __future__ import annotations

from typing import Any, Sequence

from podnet.cni.errors import IO_FAILURE, CniError
from podnet.dataplane.net.links import ip_json
from podnet.dataplane.net.netns import CommandError
from podnet.dataplane.net.podwire import GATEWAY_V4, GATEWAY_V6

CHECK_FAILED = 100  # plugin-specific: state differs from prevResult


def _ip_json(netns: str | None, args: Sequence[str]) -> list[dict[str, Any]]:
    """`ip -j ARGS` in `netns` (None: the node's, where the plugin runs); [] for a device
    that is gone."""
    try:
        return ip_json(netns, *args)
    except CommandError as e:
        if "Cannot find device" in e.stderr or "does not exist" in e.stderr:
            return []
        raise CniError(IO_FAILURE, f"`ip {' '.join(args)}` failed", e.stderr.strip()) from None
    except ValueError:
        return []


def _fail(msg: str, details: str = "") -> CniError:
    return CniError(CHECK_FAILED, msg, details)


def own_ips(prev: dict[str, Any], ifname: str) -> list[dict[str, Any]]:
    """prevResult's addresses on our pod interface: in a chain, earlier plugins' addresses
    (lo's 127.0.0.1, another interface's) are theirs to check. An address without an
    `interface` index is taken as ours."""
    ifaces = prev.get("interfaces") or []
    ours = {n for n, i in enumerate(ifaces) if isinstance(i, dict) and i.get("name") == ifname and i.get("sandbox")}
    return [ip for ip in prev.get("ips") or [] if isinstance(ip, dict)
            and (ip.get("interface") is None or ip.get("interface") in ours)]


def check(prev: dict[str, Any], netns: str, ifname: str, host: str) -> None:
    pod = netns
    links = _ip_json(pod, ["link", "show", "dev", ifname])
    if not links:
        raise _fail(f"interface {ifname} is missing in {netns}")
    want_mac = next((i.get("mac") for i in prev.get("interfaces") or []
                     if i.get("name") == ifname and i.get("sandbox")), None)
    if want_mac and links[0].get("address") != want_mac:
        raise _fail(f"interface {ifname} in {netns} has MAC {links[0].get('address')}, expected {want_mac}")
    if "UP" not in links[0].get("flags", []):
        raise _fail(f"interface {ifname} in {netns} is down")
    have = {f"{a['local']}/{a['prefixlen']}" for i in _ip_json(pod, ["addr", "show", "dev", ifname])
            for a in i.get("addr_info", [])}
    routes4 = _ip_json(pod, ["-4", "route", "show", "dev", ifname])
    routes6 = _ip_json(pod, ["-6", "route", "show", "dev", ifname])
    host_routes = {r.get("dst") for fam in ("-4", "-6")
                   for r in _ip_json(None, [fam, "route", "show", "dev", host])}
    if not _ip_json(None, ["link", "show", "dev", host]):
        raise _fail(f"host end {host} of {ifname} is missing in the node namespace")
    # the node resolves the pod by ARP/ND; a pinned entry with another MAC (an older
    # podnet's, from before a chained plugin changed the MAC) cuts the node off the pod
    mac = links[0].get("address")
    pinned = {n.get("dst"): n.get("lladdr") for n in _ip_json(None, ["neigh", "show", "dev", host])
              if {"PERMANENT", "NOARP"} & set(n.get("state") or ())}
    listed = [{"dst": r.get("dst"), "gw": r.get("gw")} for r in prev.get("routes") or [] if isinstance(r, dict)]
    for ip in own_ips(prev, ifname):
        addr = str(ip.get("address", ""))
        if addr not in have:
            raise _fail(f"address {addr} is missing on {ifname} in {netns}", f"present: {sorted(have)}")
        bare = addr.split("/")[0]
        if bare not in host_routes and addr not in host_routes:
            raise _fail(f"route to {addr} via {host} is missing in the node namespace")
        if bare in pinned and pinned[bare] != mac:
            raise _fail(f"the node pins {bare} to MAC {pinned[bare]} on {host}, but {ifname} in "
                        f"{netns} has MAC {mac}", f"`ip neigh del {bare} dev {host}` in the node namespace")
        v6 = ":" in bare
        gw = GATEWAY_V6 if v6 else GATEWAY_V4
        if {"dst": "::/0" if v6 else "0.0.0.0/0", "gw": gw} not in listed:
            continue  # a later plugin of the chain took our default route over (or out)
        if not any(r.get("dst") == "default" and r.get("gateway") == gw for r in (routes6 if v6 else routes4)):
            raise _fail(f"default route via {gw} is missing on {ifname} in {netns}")
