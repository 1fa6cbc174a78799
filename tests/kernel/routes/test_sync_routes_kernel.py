"""dataplane/net/routes.py on the real kernel: a block's route moves from the VXLAN device
to the segment (CrossSubnet learning the peer shares the subnet) and back. Root, a netns of
its own (pnt-), removed after."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from netnames import unique_netns  # noqa: E402
from podnet.api.defaults import ROUTE_PROTO  # noqa: E402
from podnet.calc.routes import VXLAN_DEV, VXLAN_PORT, VXLAN_VNI, vtep_mac  # noqa: E402
from podnet.dataplane.net.routes import KernelRoute, list_routes, sync_routes  # noqa: E402
from podnet.dataplane.net.vxlan import ensure_vxlan  # noqa: E402

pytestmark = pytest.mark.root


@pytest.fixture
def netns() -> Iterator[str]:
    ns = unique_netns("rt")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in ("link set lo up", "link add eth0 type veth peer name eth1", "link set eth1 up", "addr add 198.18.0.11/24 dev eth0",
                    "link set eth0 up"):
            subprocess.run(["ip", "-n", ns, *cmd.split()], check=True)
        ensure_vxlan(ns, VXLAN_DEV, VXLAN_VNI, "198.18.0.11", "eth0", vtep_mac("198.18.0.11"), 1450, VXLAN_PORT)
        subprocess.run(["ip", "-n", ns, "link", "set", VXLAN_DEV, "up"], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def dev_of(ns: str, dst: str) -> str:
    rows = json.loads(subprocess.run(["ip", "-n", ns, "-j", "route", "show", dst, "proto", str(ROUTE_PROTO)],
                                     capture_output=True, text=True, check=True).stdout)
    assert len(rows) == 1, rows
    return str(rows[0]["dev"])


@pytest.mark.parametrize("relist", [False, True])
def test_a_route_moves_between_vxlan_and_the_segment(netns: str, relist: bool):
    wrapped = KernelRoute("10.244.3.0/26", "198.18.0.13", VXLAN_DEV)
    direct = KernelRoute("10.244.3.0/26", "198.18.0.13", "")
    onlink = frozenset({VXLAN_DEV})
    sync_routes(netns, {wrapped}, set(), onlink_devs=onlink)
    assert dev_of(netns, "10.244.3.0/26") == VXLAN_DEV
    current = list_routes(netns) if relist else {wrapped}
    assert sync_routes(netns, {direct}, current, onlink_devs=onlink) == (1, 0)
    assert dev_of(netns, "10.244.3.0/26") == "eth0"
    current = list_routes(netns) if relist else {direct}
    assert sync_routes(netns, {direct}, current, onlink_devs=onlink) == (0, 0)  # listed as eth0: the same
    assert sync_routes(netns, {wrapped}, current, onlink_devs=onlink) == (1, 0)
    assert dev_of(netns, "10.244.3.0/26") == VXLAN_DEV
