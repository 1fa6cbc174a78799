"""The routes role on the real kernel: mark-and-sweep by protocol, direct and VXLAN.

Two bare namespaces stand for two nodes; the role runs for n1 with states built by hand,
so the kernel side is checked without a whole lab.
"""
from __future__ import annotations

import subprocess

import pytest

from netnames import unique_netns

from podnet.agent.routes_role import RoutesRole
from podnet.api.defaults import ROUTE_PROTO
from podnet.api.objects import Node, Resource
from podnet.calc.model import ClusterState
from podnet.dataplane.net.links import IpBatch

pytestmark = pytest.mark.root


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def node_ns():
    ns = unique_netns("routes")
    IpBatch(None).add(f"netns add {ns}").run()
    try:
        b = IpBatch(ns).add("link set lo up").add("link add eth0 type veth peer name peer0")
        b.add("link set peer0 up")
        b.add("addr add 198.18.0.11/24 dev eth0").add("addr add fd00:198:18::11/64 dev eth0 nodad")
        b.add("link set eth0 up").run()
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def state(blocks: list[str], owner: str = "n2", nodes_up: tuple[str, ...] = ("n1", "n2")) -> ClusterState:
    nodes = [Node({"kind": "Node", "metadata": {"name": n}, "status": {"addresses": [
        {"type": "InternalIP", "address": f"198.18.0.1{i}"},
        {"type": "InternalIP", "address": f"fd00:198:18::1{i}"}]}})
        for i, n in ((1, "n1"), (2, "n2"), (3, "n3")) if n in nodes_up]
    bl = [Resource({"kind": "IPAMBlock", "metadata": {"name": c.replace("/", "-").replace(":", "-")},
                    "spec": {"cidr": c, "affinity": f"host:{owner}"}}) for c in blocks]
    return ClusterState.from_objects(nodes + bl, "n1")


def test_direct_routes_follow_blocks_and_sweep_only_ours(node_ns):
    ip(node_ns, "route", "add", "10.99.0.0/24", "via", "198.18.0.12", "proto", str(ROUTE_PROTO))  # stale, ours
    ip(node_ns, "route", "add", "10.98.0.0/24", "via", "198.18.0.12")  # somebody else's
    role = RoutesRole("n1", "198.18.0.11", "none", node_ns)
    role.apply_kernel(state(["10.244.1.0/26", "fd00:10:244::40/122"]))
    r4, r6 = ip(node_ns, "route"), ip(node_ns, "-6", "route")
    assert "10.244.1.0/26 via 198.18.0.12" in r4 and "fd00:10:244::40/122 via fd00:198:18::12" in r6
    assert "10.99.0.0/24" not in r4 and "10.98.0.0/24" in r4
    role.apply_kernel(state(["10.244.2.0/26"]))  # a block released, another claimed
    r4 = ip(node_ns, "route")
    assert "10.244.2.0/26 via 198.18.0.12" in r4 and "10.244.1.0/26" not in r4
    assert "fd00:10:244::40" not in ip(node_ns, "-6", "route")
    # drift (somebody deleted our route) is repaired when the role relists
    ip(node_ns, "route", "del", "10.244.2.0/26")
    role.committed(False)
    role.apply_kernel(state(["10.244.2.0/26"]))
    assert "10.244.2.0/26 via 198.18.0.12" in ip(node_ns, "route")


def test_vxlan_device_entries_and_routes(node_ns):
    role = RoutesRole("n1", "198.18.0.11", "vxlan", node_ns)
    role.apply_kernel(state(["10.244.1.0/26", "fd00:10:244::40/122"]))
    link = ip(node_ns, "-d", "link", "show", "pnvx")
    assert "vxlan id 4096" in link and "local 198.18.0.11" in link and "nolearning" in link
    assert "0e:70:c6:12:00:0b" in link
    fdb = subprocess.run(["ip", "netns", "exec", node_ns, "bridge", "fdb", "show", "dev", "pnvx"],
                         capture_output=True, text=True).stdout
    assert "0e:70:c6:12:00:0c dst 198.18.0.12" in fdb
    neigh = ip(node_ns, "neigh", "show", "dev", "pnvx")
    assert "198.18.0.12 lladdr 0e:70:c6:12:00:0c PERMANENT" in neigh
    assert "10.244.1.0/26 via 198.18.0.12 dev pnvx" in ip(node_ns, "route")
    role.apply_kernel(state([]))  # n2 has no block left: entries and routes go
    assert "10.244.1.0/26" not in ip(node_ns, "route")
    assert "198.18.0.12" not in ip(node_ns, "neigh", "show", "dev", "pnvx")


def test_a_node_that_leaves_takes_its_routes_and_one_that_joins_brings_them(node_ns):
    role = RoutesRole("n1", "198.18.0.11", "none", node_ns)
    role.apply_kernel(state(["10.244.3.0/26"], owner="n3"))  # n3 not registered yet
    assert "10.244.3.0/26" not in ip(node_ns, "route")
    role.apply_kernel(state(["10.244.3.0/26"], owner="n3", nodes_up=("n1", "n2", "n3")))
    assert "10.244.3.0/26 via 198.18.0.13" in ip(node_ns, "route")
    role.apply_kernel(state(["10.244.3.0/26"], owner="n3"))  # its Node object is deleted
    assert "10.244.3.0/26" not in ip(node_ns, "route")
