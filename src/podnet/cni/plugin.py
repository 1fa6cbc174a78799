"""podnet-cni's verbs. ADD keeps an undo stack (IPAM, then links) and unwinds it on any
failure, so a failed ADD leaves nothing behind.

IPAM is delegated per SPEC.md §4: `ipam.type` is executed from CNI_PATH with the same
environment and the whole config. When the type is `podnet-ipam` the same code runs
in-process instead of in a second Python process (identical behaviour, half the cost).

The kernel work is the dataplane's: a `Plugin` is given the pod wiring to use (the binary's
`ip -batch` or the daemon's netlink, dataplane/net/podwire*.py) and the namespace guard
(cni/guard.py); a `WireError` from the dataplane becomes CNI error 5 (I/O) here, at the
plugin's edge.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Callable

from podnet.cni import health
from podnet.cni.config import parse_netconf
from podnet.cni.errors import IO_FAILURE, CniError
from podnet.cni.guard import NetnsGuard, check_netns
from podnet.dataplane.net.podwire import (GATEWAY_V4, GATEWAY_V6, HOST_MAC, IpWiring, PodWiring, WireError,
                                          host_ifname, our_links, pod_mac)
from podnet.cni.result import chain, convert
from podnet.cni.skel import Args

OWN_IPAM = "podnet-ipam"


def _ipam(a: Args, command: str, ipam_type: str) -> dict[str, Any] | None:
    if ipam_type == OWN_IPAM:
        from podnet.cni import ipam_plugin
        return ipam_plugin.HANDLERS[command](a._replace(command=command))
    from podnet.cni.invoke import delegate
    return delegate(ipam_type, command, a.env, a.raw_stdin)


class Plugin:
    """podnet-cni's verbs over one pod wiring and one namespace guard."""

    def __init__(self, wiring: PodWiring, guard: NetnsGuard | None = None):
        self.wiring = wiring
        self.guard = guard or NetnsGuard()

    @property
    def handlers(self) -> dict[str, Callable[[Args], Any]]:
        verbs: dict[str, Callable[[Args], Any]] = {
            "ADD": self.add, "DEL": self.delete, "CHECK": self.check, "STATUS": self.status, "GC": self.gc}
        return {cmd: _mapped(fn) for cmd, fn in verbs.items()}

    def add(self, a: Args) -> dict[str, Any]:
        nc = parse_netconf(a.conf)
        check_netns(a.netns)
        self.guard.refuse_root_netns(a.env)
        undo: list[Callable[[], Any]] = []
        try:
            ires = _ipam(a, "ADD", nc.ipam_type) or {}
            undo.append(lambda: _ipam(a, "DEL", nc.ipam_type))
            ips = [str(i.get("address", "")).split("/")[0] for i in ires.get("ips") or []]
            if not ips:
                raise CniError(7, f"IPAM plugin {nc.ipam_type} returned no address", json.dumps(ires))
            wired = self.wiring.setup(a.container_id, a.ifname, a.netns, nc.mtu, ips, nc.name)
            undo.append(lambda: self.wiring.delete_link(wired.host))
            # the config's dns wins over the IPAM plugin's (host-local's resolvConf), as in bridge
            dns = nc.dns or (ires.get("dns") if isinstance(ires.get("dns"), dict) else None) or {}
            own = build_result(a, dns, wired.host, ips, ires.get("routes") or [], wired.default_routes)
            result = convert(chain(a.conf.get("prevResult"), own), a.version)
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    pass  # best effort: the original error is what the runtime must see
            raise
        return result

    def delete(self, a: Args) -> None:
        nc = parse_netconf(a.conf)
        self.guard.refuse_root_netns(a.env)
        self.wiring.delete_link(host_ifname(a.container_id, a.ifname))
        _ipam(a, "DEL", nc.ipam_type)
        return None


    def check(self, a: Args) -> None:
        from podnet.cni.kcheck import check as kcheck, own_ips
        nc = parse_netconf(a.conf)
        prev = a.conf.get("prevResult")
        if not isinstance(prev, dict):
            raise CniError(7, "CHECK needs prevResult", "the runtime passes the ADD result as prevResult")
        check_netns(a.netns)
        if nc.ipam_type == OWN_IPAM:
            # in a chain, prevResult also holds earlier plugins' addresses (lo's 127.0.0.1):
            # podnet-ipam is asked about ours only (a foreign IPAM gets the config untouched)
            a = a._replace(conf={**a.conf, "prevResult": {**prev, "ips": own_ips(prev, a.ifname)}})
        _ipam(a, "CHECK", nc.ipam_type)
        kcheck(prev, a.netns, a.ifname, host_ifname(a.container_id, a.ifname))
        return None


    def status(self, a: Args) -> None:
        """51 (pods already attached here are cut off) is decided first: it is worse than
        the IPAM plugin's 50 (no new pods)."""
        nc = parse_netconf(a.conf)
        health.check_node(nc.name)
        _ipam(a, "STATUS", nc.ipam_type)
        return None


    def gc(self, a: Args) -> None:
        """Stale host ends are found by their alias (network, containerID, ifname)."""
        from podnet.cni.config import valid_attachments
        nc = parse_netconf(a.conf)
        self.guard.refuse_root_netns(a.env)
        valid = valid_attachments(a.conf)
        errors = []
        try:
            _ipam(a, "GC", nc.ipam_type)
        except CniError as e:
            errors.append(e)
        for name, att in our_links(nc.name).items():
            if att not in valid:
                try:
                    self.wiring.delete_link(name)
                except WireError as e:
                    errors.append(_cni_error(e))
        if errors:
            raise CniError(errors[0].code, "GC finished with errors", "; ".join(str(e) for e in errors))
        return None


def _cni_error(e: WireError) -> CniError:
    return CniError(IO_FAILURE, e.msg, e.details)


def _mapped(fn: Callable[[Args], Any]) -> Callable[[Args], Any]:
    """The CNI's edge for the dataplane's errors."""
    @functools.wraps(fn)
    def call(a: Args) -> Any:
        try:
            return fn(a)
        except WireError as e:
            raise _cni_error(e) from None
    return call


def build_result(a: Args, dns: dict[str, Any], host: str, ips: list[str],
                 extra_routes: list[dict[str, Any]], default_routes: frozenset[int] = frozenset({4, 6}),
                 ) -> dict[str, Any]:
    out_ips, routes = [], []
    for ip in ips:
        v6 = ":" in ip
        gw = GATEWAY_V6 if v6 else GATEWAY_V4
        out_ips.append({"address": f"{ip}/{128 if v6 else 32}", "gateway": gw, "interface": 1})
        if (6 if v6 else 4) in default_routes:
            routes.append({"dst": "::/0" if v6 else "0.0.0.0/0", "gw": gw})
    routes += [r for r in extra_routes if r not in routes]
    return {
        "interfaces": [{"name": host, "mac": HOST_MAC},
                       {"name": a.ifname, "mac": pod_mac(a.container_id, a.ifname), "sandbox": a.netns}],
        "ips": out_ips, "routes": routes, "dns": dns,
    }



# The plugin binary's: `ip -batch` wiring, the namespace checked on every call.
HANDLERS = Plugin(IpWiring()).handlers
