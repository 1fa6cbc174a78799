"""The daemon's way to wire a pod: the same steps as veth.setup/delete_link, over
rtnl.py's netlink socket instead of `ip -batch` processes. Same names, MACs, routes,
neighbours and sysctls; same undo on failure.
"""
from __future__ import annotations

import errno
import os
from typing import Sequence

from podnet.cni.errors import IO_FAILURE, CniError
from podnet.cni.rtnl import RT_SCOPE_LINK, Rtnl
from podnet.cni.veth import (ALIAS_PREFIX, GATEWAY_V4, GATEWAY_V6, HOST_MAC, host_ifname,
                             node_sysctls, pod_mac)


def setup(container_id: str, ifname: str, netns: str, mtu: int, addrs: Sequence[str],
          network: str = "") -> str:
    host = host_ifname(container_id, ifname)
    mac = pod_mac(container_id, ifname)
    v4 = [a for a in addrs if ":" not in a]
    v6 = [a for a in addrs if ":" in a]
    try:
        nl = Rtnl()
    except OSError as e:
        raise CniError(IO_FAILURE, "cannot open a netlink socket", str(e)) from None
    created = False
    try:
        fd = os.open(netns, os.O_RDONLY)
        try:
            nl.veth_add(host, ifname, mtu, HOST_MAC, mac, fd)
        except OSError as e:
            msg = f"creating veth {host} <-> {ifname} in {netns} failed"
            if e.errno == errno.EEXIST:
                msg += f" ({host} or {ifname} in {netns} already exists: ADD twice without DEL?)"
            raise CniError(IO_FAILURE, msg, str(e)) from None
        finally:
            os.close(fd)
        created = True
        step = f"configuring host end {host}"
        hidx = nl.index(host)
        nl.link_set(hidx, True, f"{ALIAS_PREFIX}{network}/{container_id}/{ifname}")
        for a in v4:
            nl.route_add(hidx, a, 32, scope=RT_SCOPE_LINK)
            nl.neigh_replace(hidx, a, mac)
        for a in v6:
            nl.route_add(hidx, a, 128)
            nl.neigh_replace(hidx, a, mac)
        step = f"configuring {ifname} in {netns}"
        with Rtnl.in_netns(netns) as pod:
            pidx = pod.index(ifname)
            for a in v4:
                pod.addr_add(pidx, a, 32)
            for a in v6:
                pod.addr_add(pidx, a, 128, nodad=True)
            pod.link_set(pidx, True)
            if v4:
                pod.route_add(pidx, GATEWAY_V4, 32, scope=RT_SCOPE_LINK)
                pod.route_add(pidx, "0.0.0.0", 0, gw=GATEWAY_V4)
                pod.neigh_replace(pidx, GATEWAY_V4, HOST_MAC)
            if v6:
                pod.route_add(pidx, "::", 0, gw=GATEWAY_V6)
                pod.neigh_replace(pidx, GATEWAY_V6, HOST_MAC)
        node_sysctls(host, bool(v4), bool(v6))
    except OSError as e:
        if created:
            nl.link_del(host)
        raise CniError(IO_FAILURE, f"{step} failed", str(e)) from None
    except BaseException:
        if created:
            nl.link_del(host)
        raise
    finally:
        nl.close()
    return host


def delete_link(host: str) -> bool:
    try:
        with Rtnl() as nl:
            return nl.link_del(host)
    except OSError as e:
        raise CniError(IO_FAILURE, f"deleting {host} failed", str(e)) from None
