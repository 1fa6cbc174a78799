"""A pod's network, the way a container runtime makes it: netns, loopback, CNI ADD/DEL.

The plugins run inside the NODE's netns (started from a thread inside it, through
podnet.cni.runtime) with CNI_NETNS=/var/run/netns/<pod-ns>, so the host end of the veth,
the pod routes and the node sysctls all land in the node, as on a real machine. The
container ID is the pod's uid; the interface is eth0.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from podnet.api import defaults
from podnet.api.objects import Pod
from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.cni.errors import CniError
from podnet.calc.encap import pod_mtu as calc_pod_mtu
from podnet.dataplane.net import named_netns
from podnet.dataplane.net.links import IpBatch
from podnet.dataplane.net.netns import CommandError
from podnet.dns.resolvconf import resolv_conf
from podnet.lab.topology import LabSpec, NodeSpec

IFNAME = "eth0"
NETNS_DIR = "/var/run/netns"
ETC_NETNS = Path("/etc/netns")  # `ip netns exec` bind-mounts <netns>/resolv.conf from here


class NetworkError(Exception):
    pass


def pod_mtu(spec: LabSpec) -> int:
    """The underlay's MTU, minus VXLAN's overhead when the default pools may encapsulate
    (Always, or CrossSubnet in a lab of racks: a pod's MTU holds for every peer it may
    reach; the VTEPs speak IPv4, so the outer header is IPv4's)."""
    return calc_pod_mtu(spec.mtu, spec.encap != "none")


def netconf(spec: LabSpec, url: str, node: NodeSpec) -> dict[str, Any]:
    return make_netconf(url, node.name, spec.dual_stack, pod_mtu(spec))


def create_netns(netns: str) -> None:
    """The pod's namespace with its loopback up: made in-process (dataplane/net/named_netns.py,
    no `ip` started), or by `ip netns add` where that cannot be done."""
    path = os.path.join(NETNS_DIR, netns)
    if not os.path.exists(path):
        try:
            if named_netns.add(netns):
                return
        except FileExistsError:
            pass  # made meanwhile: bring its loopback up below
        except OSError as e:
            raise NetworkError(f"cannot create netns {netns}: {e}") from e
        try:
            IpBatch(None).add(f"netns add {netns}").run()
        except CommandError as e:
            if not os.path.exists(path):
                raise NetworkError(f"cannot create netns {netns}: {e.stderr.strip()}") from e
    IpBatch(netns).add("link set lo up").run()


def netns_exists(netns: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, netns))


def delete_netns(netns: str) -> None:
    if os.path.exists(os.path.join(NETNS_DIR, netns)):
        named_netns.remove(netns)


def list_pod_netns(spec: LabSpec) -> list[str]:
    prefix = spec.prefix + "p"
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _ips(result: dict[str, Any]) -> list[str]:
    ips = [str(ipaddress.ip_interface(str(i.get("address"))).ip) for i in result.get("ips") or []]
    return sorted(ips, key=lambda ip: ipaddress.ip_address(ip).version)


def attach(spec: LabSpec, url: str, node: NodeSpec, netns: str, container_id: str,
           requested_ips: Sequence[str] = ()) -> list[str]:
    """Create the pod's netns and run CNI ADD; returns the pod IPs, IPv4 first.
    `requested_ips` (the pod's ipAddrs annotation) go to the plugin as a runtime does:
    the `ips` capability, in runtimeConfig."""
    create_netns(netns)
    try:
        res = runtime.add(netconf(spec, url, node), container_id, os.path.join(NETNS_DIR, netns),
                          IFNAME, runtime.default_cni_path(), node_netns=node.netns,
                          capability_args={"ips": list(requested_ips)} if requested_ips else None)
    except CniError as e:
        raise NetworkError(f"CNI ADD on node {node.name} failed (code {e.code}): {e}") from e
    ips = _ips(res)
    if not ips:
        raise NetworkError(f"CNI ADD on node {node.name} returned no IP: {res}")
    return ips


def detach(spec: LabSpec, url: str, node: NodeSpec, netns: str, container_id: str) -> None:
    """CNI DEL (releases the pod's IPs); the netns may already be gone."""
    path = os.path.join(NETNS_DIR, netns)
    try:
        runtime.delete(netconf(spec, url, node), container_id,
                       path if os.path.exists(path) else "", IFNAME,
                       runtime.default_cni_path(), node_netns=node.netns)
    except CniError as e:
        raise NetworkError(f"CNI DEL on node {node.name} failed (code {e.code}): {e}") from e


def write_resolv_conf(spec: LabSpec, pod: Pod, netns: str) -> None:
    """The pod's resolv.conf (its dnsPolicy), where `ip netns exec` will find it."""
    ips = [defaults.DNS_SERVICE_IP_V4] + ([defaults.DNS_SERVICE_IP_V6] if spec.dual_stack else [])
    # the node's resolver (dnsPolicy Default) is the outside world's DNS server
    text = resolv_conf(pod, ips, defaults.CLUSTER_DOMAIN, spec.node_resolv_conf())
    d = ETC_NETNS / netns
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text(text)


def remove_resolv_conf(netns: str) -> None:
    shutil.rmtree(ETC_NETNS / netns, ignore_errors=True)
