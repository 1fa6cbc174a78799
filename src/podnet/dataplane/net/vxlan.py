"""The VXLAN overlay device and its static FDB and neighbour entries.

The device (`pnvx`) is podnet's alone, so every FDB and neighbour entry on it is ours:
sync lists them and removes what calc/routes.py no longer wants. Learning is off; every
peer is programmed (as Calico and flannel do), so no multicast or flooding is needed.
"""
from __future__ import annotations

import json
from typing import Iterable

from podnet.dataplane.net.links import IpBatch, ip_json, link_info
from podnet.dataplane.net.netns import run


def ensure_vxlan(netns: str | None, dev: str, vni: int, local_ip: str, underlay_dev: str,
                 mac: str, mtu: int, port: int) -> bool:
    """Create or fix the device. Returns True when it was (re)created."""
    info = link_info(netns, dev)
    data = ((info or {}).get("linkinfo") or {}).get("info_data") or {}
    same = (info is not None and data.get("id") == vni and data.get("local") == local_ip
            and data.get("port") == port)
    b = IpBatch(netns)
    created = False
    if info is not None and not same:
        b.add(f"link del {dev}")
    if not same:
        b.add(f"link add {dev} type vxlan id {vni} local {local_ip} dev {underlay_dev} "
              f"dstport {port} nolearning")
        created = True
    if created or (info or {}).get("address") != mac:
        b.add(f"link set {dev} address {mac}")
    if created or (info or {}).get("mtu") != mtu:
        b.add(f"link set {dev} mtu {mtu}")
    if created or "UP" not in ((info or {}).get("flags") or []):
        b.add(f"link set {dev} up")
    b.run()
    return created


def current_neighbours(netns: str | None, dev: str) -> set[tuple[str, str]]:
    out = set()
    for row in ip_json(netns, "neigh", "show", "dev", dev):
        if row.get("lladdr") and "PERMANENT" in (row.get("state") or []):
            out.add((str(row["dst"]), str(row["lladdr"])))
    return out


def current_fdb(netns: str | None, dev: str) -> set[tuple[str, str]]:
    cp = run(netns, ["bridge", "-j", "fdb", "show", "dev", dev], check=False)
    out = set()
    for row in json.loads(cp.stdout or "[]"):
        if row.get("dst") and row.get("mac") and row.get("mac") != "00:00:00:00:00:00":
            out.add((str(row["mac"]), str(row["dst"])))
    return out


def sync_overlay(netns: str | None, dev: str, neighbours: Iterable[tuple[str, str]],
                 fdb: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Neighbours (ip, mac) and FDB entries (mac, dst) on dev, exactly. Returns (added, removed)."""
    want_n, want_f = set(neighbours), set(fdb)
    have_n, have_f = current_neighbours(netns, dev), current_fdb(netns, dev)
    ipb = IpBatch(netns)
    brb = IpBatch(netns, tool="bridge")
    for mac, dst in sorted(have_f - want_f):
        brb.add(f"fdb del {mac} dev {dev} dst {dst}")
    for mac, dst in sorted(want_f - have_f):
        brb.add(f"fdb append {mac} dev {dev} dst {dst} self permanent")
    for ip, mac in sorted(have_n - want_n):
        ipb.add(f"neigh del {ip} dev {dev}")
    for ip, mac in sorted(want_n - have_n):
        ipb.add(f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent")
    brb.run(force=True)
    ipb.run(force=True)
    return len(want_n - have_n) + len(want_f - have_f), len(have_n - want_n) + len(have_f - want_f)
