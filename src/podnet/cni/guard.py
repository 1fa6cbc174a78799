"""The plugin's checks of the namespaces it is asked to touch, before any kernel work: the
pod's namespace must exist and be another than the plugin's own, and the plugin itself must
run in a named namespace (a lab node) unless a real node opts in. The wiring itself is the
dataplane's (dataplane/net/podwire.py).
"""
from __future__ import annotations

import os
from typing import Mapping

from podnet.cni.errors import INVALID_ENV, UNKNOWN_CONTAINER, CniError
from podnet.dataplane.net.sysctl import current_netns_name


def check_netns(netns: str) -> None:
    """The pod namespace must exist and must not be the one the plugin runs in."""
    try:
        st = os.stat(netns)
    except OSError as e:
        raise CniError(UNKNOWN_CONTAINER, f"network namespace CNI_NETNS={netns} does not exist",
                       str(e)) from None
    me = os.stat("/proc/self/ns/net")
    if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
        raise CniError(INVALID_ENV, f"CNI_NETNS={netns} is the plugin's own network namespace",
                       "the pod must have a namespace of its own")


def netns_is_named() -> bool:
    """Is the namespace we run in bound under /var/run/netns (a lab node)?"""
    return current_netns_name() is not None


class NetnsGuard:
    """Lab safety: the plugin only touches a namespace that is a named one (a lab node,
    bound under /var/run/netns); the machine's own namespace is unnamed, so a call there
    is refused before anything changes. A real node opts in with
    PODNET_CNI_ALLOW_HOST_NETNS=1. (Comparing with PID 1's namespace is not enough: in a
    container, PID 1 is not in the namespace the machine's processes use.)

    `confirmed`: the caller (the daemon, whose namespace does not change) has checked
    once; the binary checks on every call."""

    def __init__(self, confirmed: bool = False):
        self.confirmed = confirmed

    def refuse_root_netns(self, env: Mapping[str, str]) -> None:
        if self.confirmed or env.get("PODNET_CNI_ALLOW_HOST_NETNS") == "1":
            return
        if not netns_is_named():
            raise CniError(INVALID_ENV, "podnet-cni runs in an unnamed network namespace (the machine's own?)",
                           "run it in a node namespace (ip netns exec <node> ...) or set "
                           "PODNET_CNI_ALLOW_HOST_NETNS=1 on a real node")
