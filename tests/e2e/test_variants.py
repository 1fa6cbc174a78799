"""The same pod-to-pod guarantee over a VXLAN overlay, and cleanup after a crash.

Smaller labs than test_lab.py, to keep CI time down.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest

from lablib import all_pairs, manifests, netns_list
from podnet.api.defaults import ROUTE_PROTO

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 9090


def test_vxlan_overlay_dual_stack(make_lab):
    lab = make_lab("--nodes", "2", "--dual-stack", "--encap", "vxlan")
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    pods = lab.wait_pods(4)
    assert {p.node_name for p in pods} == {"n1", "n2"}
    failures = all_pairs(pods, PORT)
    assert not failures, "\n".join(failures[:20])
    # the cross-node routes really go through the overlay device
    routes = subprocess.run(["ip", "-n", f"pn-{lab.name}-n1", "route", "show", "proto", str(ROUTE_PROTO)],
                            capture_output=True, text=True).stdout
    assert "dev pnvx" in routes and "onlink" in routes
    mtu = subprocess.run(["ip", "-n", f"pn-{lab.name}-n1", "-o", "link", "show", "pnvx"],
                         capture_output=True, text=True).stdout
    assert "mtu 1450" in mtu


def _remove_while_in_use(path) -> None:
    """rmtree of a directory the running lab still writes in: SQLite may remove its -wal file
    between rmtree's listing and its unlink, or make a new one before the last rmdir; neither
    is an error here, as long as the PID files and records are gone."""
    def vanished_is_fine(func, p, exc_info):
        if not issubclass(exc_info[0], FileNotFoundError):
            raise exc_info[1]
    for _ in range(5):
        try:
            shutil.rmtree(path, onerror=vanished_is_fine)
            break
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
    assert not (path / "pids").exists()


def test_force_down_cleans_up_after_a_lost_state_dir(make_lab):
    lab = make_lab("--nodes", "2")
    lab.podnet("apply", "-f", "-", input=manifests(0, 2, PORT))
    pods = lab.wait_pods(2)
    pids = [int(f.read_text()) for f in (lab.dir / "pids").glob("*.pid")]
    _remove_while_in_use(lab.dir)  # the crash: every PID file and record gone
    cp = lab.podnet("down", "--name", lab.name, "--force")
    assert "down" in cp.stdout
    assert not [n for n in netns_list() if n.startswith(f"pn-{lab.name}-")]
    for p in pods:
        assert p.annotations["podnet.io/netns"] not in netns_list()
    for pid in pids:
        alive = os.path.exists(f"/proc/{pid}") and \
            open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        assert not alive, f"pid {pid} survived"


def test_two_labs_side_by_side_are_isolated(make_lab):
    a = make_lab("--nodes", "1")
    b = make_lab("--nodes", "1")
    assert a.name != b.name
    assert lab_current(b) == b.name  # the last `up` is the current lab
    url_a = (a.dir / "datastore.url").read_text().strip()
    a.podnet("--datastore", url_a, "apply", "-f", "-", input=manifests(0, 1, PORT))
    [pa] = a.wait_pods(1)
    assert b.pods("default") == []  # separate stores
    assert "p1" not in b.podnet("get", "pods").stdout  # plain commands go to the current lab
    # the same addresses in both, each in its own namespaces
    b.podnet("apply", "-f", "-", input=manifests(0, 1, PORT))
    [pb] = b.wait_pods(1)
    assert pa.pod_ips == pb.pod_ips
    assert pa.annotations["podnet.io/netns"] != pb.annotations["podnet.io/netns"]
    # switching the current lab, like a kubeconfig context
    b.podnet("delete", "pod", "p1")
    a.podnet("use", a.name)
    assert "p1" in a.podnet("get", "pods").stdout
    listing = a.podnet("labs").stdout
    assert f"*         {a.name}" in listing and b.name in listing


def lab_current(lab) -> str:
    return (lab.home / "current").read_text().strip()
