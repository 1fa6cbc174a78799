"""`NetlinkWiring`, the CNI daemon's way to wire a pod: the same names, MACs, routes,
neighbours and sysctls as podwire.py's `ip -batch` way (`IpWiring`), over rtnl.py's netlink
sockets instead of `ip` processes, in
three batches (one sendmsg each): make the pair (the peer directly in the pod's
namespace, the host end up) and name it; the host end's routes (no neighbours: see
podwire.py); the pod end's addresses, link, routes and neighbours (its default route only where the pod has
none yet: a second network's interface leaves the first one's default alone). Same undo
on failure.
"""
from __future__ import annotations

import errno
import os
import threading
from typing import Sequence

from podnet.dataplane.net import rtnl
from podnet.dataplane.net.podwire import (ALIAS_PREFIX, GATEWAY_V4, GATEWAY_V6, HOST_MAC, WireError, Wired,
                                          host_end_no_dad, host_end_sysctls, host_ifname, node_sysctls,
                                          pod_end_sysctls, pod_mac)
from podnet.dataplane.net.rtnl import RT_SCOPE_LINK, Rtnl


class NetlinkWiring:
    """A `PodWiring` over netlink sockets: what the long-lived CNI daemon uses."""

    def setup(self, container_id: str, ifname: str, netns: str, mtu: int, addrs: Sequence[str],
              network: str = "") -> Wired:
        return setup(container_id, ifname, netns, mtu, addrs, network)

    def delete_link(self, host: str) -> bool:
        return delete_link(host)

    def drain(self) -> None:
        drain()


def setup(container_id: str, ifname: str, netns: str, mtu: int, addrs: Sequence[str],
          network: str = "") -> Wired:
    host = host_ifname(container_id, ifname)
    mac = pod_mac(container_id, ifname)
    v4 = [a for a in addrs if ":" not in a]
    v6 = [a for a in addrs if ":" in a]
    try:
        nl = Rtnl()
    except OSError as e:
        raise WireError("cannot open a netlink socket", str(e)) from None
    created = False
    try:
        fd = os.open(netns, os.O_RDONLY)
        try:
            nl.request(*rtnl.veth_add(host, ifname, mtu, HOST_MAC, mac, fd, up=True))
        except OSError as e:
            msg = f"creating veth {host} <-> {ifname} in {netns} failed"
            if e.errno == errno.EEXIST:
                msg += f" ({host} or {ifname} in {netns} already exists: ADD twice without DEL?)"
            raise WireError(msg, str(e)) from None
        finally:
            os.close(fd)
        created = True
        step = f"configuring host end {host}"
        _, link = nl.batch([rtnl.set_alias(host, f"{ALIAS_PREFIX}{network}/{container_id}/{ifname}"),
                            rtnl.get_link(host)])
        hidx, pidx = rtnl.link_index(link), rtnl.peer_index(link)  # the peer's, in the pod's namespace
        reqs = [rtnl.route_add(hidx, a, 32, scope=RT_SCOPE_LINK) for a in v4]
        reqs += [rtnl.route_add(hidx, a, 128) for a in v6]
        nl.batch(reqs)
        host_end_no_dad(host, bool(v6))  # before the pod end is up (see podwire.host_end_no_dad)
        step = f"configuring {ifname} in {netns}"
        reqs = [rtnl.addr_add(pidx, a, 32) for a in v4] + [rtnl.addr_add(pidx, a, 128, nodad=True) for a in v6]
        reqs.append(rtnl.link_up(pidx))
        with Rtnl.in_netns(netns) as pod:
            # a pod that has a default route (another network's interface) keeps it
            have = pod.default_route_families()
            default_routes = frozenset(f for f, a in ((4, v4), (6, v6)) if a and f not in have)
            if 4 in default_routes:  # the gateway's route is there for the default route only
                reqs += [rtnl.route_add(pidx, GATEWAY_V4, 32, scope=RT_SCOPE_LINK),
                         rtnl.route_add(pidx, "0.0.0.0", 0, gw=GATEWAY_V4)]
            if 6 in default_routes:
                reqs.append(rtnl.route_add(pidx, "::", 0, gw=GATEWAY_V6))
            reqs += ([rtnl.neigh_replace(pidx, GATEWAY_V4, HOST_MAC)] if v4 else []) + \
                ([rtnl.neigh_replace(pidx, GATEWAY_V6, HOST_MAC)] if v6 else [])
            pod.batch(reqs)
        pod_end_sysctls(netns, ifname, bool(v4), bool(v6))
        host_end_sysctls(host)
        node_sysctls(bool(v4), bool(v6))
    except OSError as e:
        if created:
            nl.link_del(host)
        raise WireError(f"{step} failed", str(e)) from None
    except BaseException:
        if created:
            nl.link_del(host)
        raise
    finally:
        nl.close()
    return Wired(host, default_routes)


def delete_link(host: str) -> bool:
    """Remove the host end (its pod peer, routes and neighbours go with it) and return as
    soon as that is true for every observer, not when the kernel has finished freeing.

    The kernel answers RTM_DELLINK only after `netdev_run_todo`: an RCU barrier and the
    wait for the last references, ~15-20 ms on this machine, all of it *after* the RTNL
    section in which both ends were unlisted and their routes flushed. So a helper thread
    sends the delete and waits for that answer, while the caller polls the name until it
    is gone and then sends a second delete, which takes RTNL and so returns (ENODEV) only
    once the first one's section is over: from then on the link, its peer and its routes
    are gone for everyone and the name is free for the next ADD (measured: ~0.7 ms, and
    `ip route`/`ip link` in both namespaces show nothing left). A delete that fails is
    raised as before. Only the daemon runs this (it lives on; `drain()` at exit)."""
    th = _Deleter(host)
    th.start()
    seen = False
    try:
        with Rtnl() as nl:
            while not th.done.is_set():
                try:
                    nl.index(host)
                    seen = True
                except OSError as e:
                    if e.errno != errno.ENODEV:
                        raise
                    break
                th.done.wait(0.0002)
            if not th.done.is_set():
                nl.link_del(host)  # returns once the deleter's RTNL section is over
    except OSError as e:
        th.done.wait()
        raise WireError(f"deleting {host} failed", str(e)) from None
    if th.done.is_set() and th.error is not None:
        raise WireError(f"deleting {host} failed", str(th.error)) from None
    return seen or th.gone  # whether the link was there, as far as was observed


class _Deleter(threading.Thread):
    """Sends one RTM_DELLINK and sits out the kernel's post-RTNL cleanup for the caller."""

    live: "set[_Deleter]" = set()
    lock = threading.Lock()

    def __init__(self, host: str):
        super().__init__(name=f"dellink-{host}")
        self.host = host
        self.done = threading.Event()
        self.error: OSError | None = None
        self.gone = False
        with self.lock:
            self.live.add(self)

    def run(self) -> None:
        try:
            with Rtnl() as nl:
                self.gone = nl.link_del(self.host)
        except OSError as e:
            self.error = e
        finally:
            self.done.set()
            with self.lock:
                self.live.discard(self)


def drain(timeout: float = 5.0) -> None:
    """Wait for deletes still in the kernel's cleanup (the daemon calls this on exit)."""
    with _Deleter.lock:
        pending = list(_Deleter.live)
    for th in pending:
        th.join(timeout)
