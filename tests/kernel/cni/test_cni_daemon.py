"""The node daemon: scoped to its namespace, and gone when the namespace is; DEL/ADD
back to back; the thin launchers without a daemon."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from podnet.cni import runtime
from podnet.cni.client import SOCKET_NAME
from podnet.cni.config import make_netconf
from podnet.dataplane.net.podwire import host_ifname

from cnilab import CNI_PATH

pytestmark = pytest.mark.root


def _reachable(ns: str) -> bool:
    code = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r)" % SOCKET_NAME)
    return subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", code],
                          capture_output=True).returncode == 0


def test_daemon_is_only_reachable_from_its_node_and_exits_with_it(lab):
    other = lab.netns("other")
    p = lab.daemon or lab.start_daemon()
    assert _reachable(lab.node) and not _reachable(other)
    subprocess.run(["ip", "netns", "del", lab.node], check=True)
    lab.namespaces.remove(lab.node)
    try:
        p.wait(15)  # exits by itself once its namespace is gone
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon outlived its node namespace")


def test_del_then_add_again_right_away(dual_lab):
    """With the daemon, DEL answers before the kernel has finished freeing the veth (see
    podwire_netlink.delete_link). By then the link, its pod peer and its routes must be gone for
    everyone, the addresses released, and an ADD of the same attachment must work at once."""
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    p = lab.netns("p")
    host = host_ifname("c1", "eth0")
    for i in range(8):
        r = runtime.add(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
        runtime.delete(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
        if i % 2:
            continue  # odd rounds: the next ADD follows the DEL with nothing in between
        assert host not in lab.sh(lab.node, "ip", "-o", "link").stdout
        assert "eth0" not in lab.sh(p, "ip", "-o", "link").stdout
        assert lab.sh(lab.node, "ip", "route").stdout.strip() == ""
        assert "fd00" not in lab.sh(lab.node, "ip", "-6", "route").stdout
        assert lab.allocations() == set()
    q = lab.netns("q")
    r = runtime.add(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    r2 = runtime.add(nc, "c2", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node)
    v4 = next(i["address"].split("/")[0] for i in r["ips"] if ":" not in i["address"])
    assert lab.ping(q, v4)
    for cid, ns, res in (("c1", p, r), ("c2", q, r2)):
        runtime.delete(nc, cid, lab.path(ns), "eth0", CNI_PATH, node_netns=lab.node, prev_result=res)
    assert lab.allocations() == set()


def test_thin_launcher_without_a_daemon(lab):
    """cni/bin/podnet-cni (`python -I -S`) with no daemon in its namespace execs the full
    plugin that follows it on CNI_PATH; with none there, a CNI error, not a traceback."""
    thin = os.path.join(os.path.dirname(runtime.__file__), "bin", "podnet-cni")
    bare = lab.netns("bare")  # no daemon here, whatever the fixture started in lab.node
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION"}
    stdin = b'{"cniVersion": "1.0.0"}'
    cp = subprocess.run(["ip", "netns", "exec", bare, thin], env={**env, "CNI_PATH": CNI_PATH},
                        input=stdin, capture_output=True)
    assert cp.returncode == 0 and "1.1.0" in json.loads(cp.stdout)["supportedVersions"]
    cp = subprocess.run(["ip", "netns", "exec", bare, thin], env={**env, "CNI_PATH": os.path.dirname(thin)},
                        input=stdin, capture_output=True)
    doc = json.loads(cp.stdout)
    assert cp.returncode == 1 and doc["code"] == 11 and "no full podnet-cni" in doc["msg"]
    assert cp.stderr == b""


def test_launcher_installed_as_a_relative_symlink_elsewhere(lab, tmp_path):
    """As on a real node: /opt/cni/bin/podnet-ipam -> (relative) .../cni/bin/podnet-cni.
    The launcher finds client.py through the link and serves as the plugin it is named
    after: with the daemon, and without one (exec of the full plugin further on)."""
    thin = os.path.join(os.path.dirname(runtime.__file__), "bin", "podnet-cni")
    opt = tmp_path / "opt-cni-bin"
    opt.mkdir()
    (opt / "podnet-ipam").symlink_to(os.path.relpath(thin, opt))
    env = {"PATH": os.environ["PATH"], "CNI_PATH": f"{opt}:{CNI_PATH}"}
    stdin = make_netconf(lab.url, "n1", False)
    if lab.daemon is None:
        lab.start_daemon()
    for ns in (lab.node, lab.netns("bare")):  # a daemon in the first, none in the second
        cp = subprocess.run(["ip", "netns", "exec", ns, str(opt / "podnet-ipam")],
                            env={**env, "CNI_COMMAND": "GC"}, input=json.dumps(stdin).encode(),
                            capture_output=True)
        assert (cp.returncode, cp.stdout, cp.stderr) == (0, b"", b""), cp
        cp = subprocess.run(["ip", "netns", "exec", ns, str(opt / "podnet-ipam")],
                            env={**env, "CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "x",
                                 "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0"},
                            input=json.dumps(stdin).encode(), capture_output=True)
        doc = json.loads(cp.stdout)  # podnet-ipam's answer, not podnet-cni's
        assert cp.returncode == 1 and doc["code"] == 3 and "no address allocated" in doc["msg"], doc


def test_daemon_survives_malformed_requests(dual_lab):
    """More garbage connections than the daemon has workers, then a real call: each bad
    request is answered with CNI error 6 (SPEC.md: failed to decode content) and costs
    the daemon nothing."""
    lab = dual_lab
    if lab.daemon is None:
        lab.start_daemon()
    bad = [b"\xff\xfe\0\0x", b"cni\0NO_EQUALS_SIGN\0\0{}", b"cni\0CNI_COMMAND=ADD", b"",
           b"../../bin/sh\0\0{}"] * 4
    code = ("import json, socket, sys\nout = []\nfor b in %r:\n"
            "    s = socket.socket(socket.AF_UNIX); s.connect(%r); s.sendall(b); s.shutdown(1)\n"
            "    r = b''\n    while True:\n        c = s.recv(65536)\n        if not c: break\n        r += c\n"
            "    s.close(); n = int.from_bytes(r[1:5], 'big'); out.append([r[0], json.loads(r[5:5 + n])])\n"
            "print(json.dumps(out))\n" % (bad, SOCKET_NAME))
    cp = subprocess.run(["ip", "netns", "exec", lab.node, "python3", "-c", code], capture_output=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    for raw, (rc, doc) in zip(bad, json.loads(cp.stdout)):
        assert rc == 1 and doc["code"] == 6 and doc["msg"] == "failed to decode content", (raw, doc)
    assert lab.daemon.poll() is None
    nc = make_netconf(lab.url, "n1", True)
    q = lab.netns("q")
    r = runtime.add(nc, "c1", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node)
    runtime.delete(nc, "c1", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    assert lab.allocations() == set()
