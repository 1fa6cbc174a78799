"""The node's CNI daemon acts as root for whoever connects to its socket: only root may
(issue 12 §1). Each test drives the real daemon in a test node namespace, the unprivileged
side as uid/gid 65534 (setpriv), and each failed before the daemon checked its callers."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from podnet.cni import daemon as cnid
from podnet.cni import runtime
from podnet.cni.client import SOCKET_NAME
from podnet.cni.config import make_netconf
from podnet.dataplane.net.podwire import host_ifname

from cnilab import BIN, CNI_PATH, Lab, pool

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
THIN = os.path.join(os.path.dirname(runtime.__file__), "bin", "podnet-cni")
ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}


@pytest.fixture
def dlab(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run a client as uid 65534")
    lab = Lab(tmp_path)
    # a directory uid 65534 can write and the daemon's root can read: where an attacker
    # would put the file it wants run, and where it would point a SQLite URL
    lab.open_dir = tempfile.mkdtemp(prefix="pnt-cnisec-")
    os.chmod(lab.open_dir, 0o777)
    try:
        lab.store.create(pool("v4", "10.244.0.0/16"))
        lab.store.create(pool("v6", "fd00:10:244::/56"))
        lab.start_daemon()
        yield lab
    finally:
        lab.close()
        shutil.rmtree(lab.open_dir, ignore_errors=True)


def _payload(lab) -> str:
    """An executable that records the uid it ran as: the 'IPAM plugin' of the attacks."""
    p = os.path.join(lab.open_dir, "own")
    with open(p, "w") as f:
        f.write(f"#!/bin/sh\nid -u > {lab.open_dir}/ran\ncat >/dev/null\n"
                "echo '{\"cniVersion\":\"1.1.0\",\"ips\":[{\"address\":\"10.9.9.9/32\"}]}'\n")
    os.chmod(p, 0o755)
    return p


def _call(lab, argv, env, stdin, user=(), timeout=30.0):
    """One plugin call in the node namespace: (exit code, parsed stdout, stderr, seconds)."""
    full = {"PATH": os.environ["PATH"], **env}
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    t = time.monotonic()
    cp = subprocess.run(["ip", "netns", "exec", lab.node, *user, *argv], env=full, input=data,
                        capture_output=True, timeout=timeout)
    out = cp.stdout.decode().strip()
    return cp.returncode, (json.loads(out) if out else None), cp.stderr.decode(), time.monotonic() - t


def test_an_unprivileged_caller_gets_nothing_done_as_root(dlab):
    """uid 65534 asks the daemon (through the real thin launcher) to run its own file as
    the IPAM plugin, to GC every pod's link, and to open a SQLite file of its choice:
    each is refused with code 102 before anything runs, and the pods keep working."""
    lab = dlab
    _payload(lab)
    nc = make_netconf(lab.url, "n1", True)
    p, q = lab.netns("p"), lab.netns("q")
    r = runtime.add(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    rq = runtime.add(nc, "c2", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node)
    evil = {**nc, "ipam": {**nc["ipam"], "type": "own"}}
    other_db = f"sqlite:///{lab.open_dir}/stolen.db"
    attacks = [
        ({**ADD_ENV, "CNI_CONTAINERID": "x1", "CNI_NETNS": lab.path(lab.netns("x")),
          "CNI_PATH": f"{lab.open_dir}:{CNI_PATH}"}, evil),
        ({"CNI_COMMAND": "GC", "CNI_PATH": CNI_PATH}, nc),  # no valid attachments: every link
        ({"CNI_COMMAND": "STATUS", "CNI_PATH": CNI_PATH},
         {**nc, "ipam": {**nc["ipam"], "datastore": other_db}}),
    ]
    for env, conf in attacks:
        rc, doc, err, _ = _call(lab, [THIN], env, conf, user=NOBODY)
        assert rc == 1 and doc["code"] == 102 and "root only" in doc["msg"], (env, doc, err)
        assert "uid 65534" in doc["details"]
    assert not os.path.exists(f"{lab.open_dir}/ran"), "the caller's file ran"
    assert not os.path.exists(f"{lab.open_dir}/stolen.db")
    assert host_ifname("c1", "eth0") in lab.sh(lab.node, "ip", "-o", "link").stdout
    assert lab.ping(q, r["ips"][0]["address"].split("/")[0])
    for cid, ns, res in (("c1", p, r), ("c2", q, rq)):
        runtime.delete(nc, cid, lab.path(ns), "eth0", CNI_PATH, node_netns=lab.node, prev_result=res)
    assert lab.allocations() == set()


def test_root_requests_cannot_choose_the_plugin_path_or_the_datastore(dlab):
    """Even root's requests use the daemon's own plugin search path (a CNI_PATH in the
    request is not looked at) and only the datastore it was started for."""
    lab = dlab
    _payload(lab)
    nc = make_netconf(lab.url, "n1", True)
    env = {**ADD_ENV, "CNI_NETNS": lab.path(lab.netns("p")), "CNI_PATH": f"{lab.open_dir}:{CNI_PATH}"}
    rc, doc, err, _ = _call(lab, [os.path.join(BIN, "podnet-cni")], env,
                            {**nc, "ipam": {**nc["ipam"], "type": "own"}})
    assert rc == 1 and doc["code"] == 7 and "failed to find plugin 'own'" in doc["msg"], (doc, err)
    assert not os.path.exists(f"{lab.open_dir}/ran"), "the request's CNI_PATH was searched"
    other = f"{lab.open_dir}/other.db"
    rc, doc, err, _ = _call(lab, [os.path.join(BIN, "podnet-cni")], env,
                            {**nc, "ipam": {**nc["ipam"], "datastore": f"sqlite:///{other}"}})
    assert rc == 1 and doc["code"] == 7 and "does not serve datastore" in doc["msg"], (doc, err)
    assert lab.url in doc["details"]
    assert not os.path.exists(other)
    assert lab.allocations() == set()
    # what the daemon was told to use still works: the node's plugin dir, its datastore
    rc, doc, err, _ = _call(lab, [os.path.join(BIN, "podnet-cni")], {**env, "CNI_COMMAND": "STATUS"}, nc)
    assert rc == 0, (doc, err)


HOLD = """
import socket, sys, time
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(%r)
    held.append(s)
print("holding", flush=True)
time.sleep(120)
""" % SOCKET_NAME


def _hold(lab, n, user=()):
    """`n` connections to the daemon that never send a byte (half-open requests)."""
    p = subprocess.Popen(["ip", "netns", "exec", lab.node, *user, "/usr/bin/python3", "-c", HOLD, str(n)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def _stop(p):
    p.kill()
    p.wait()


@pytest.mark.parametrize("who", ["nobody", "root"])
def test_half_open_connections_cannot_starve_the_daemon(dlab, who):
    """Connections that never send their request, more than the daemon has workers: an
    unprivileged one is refused before anything is read; a root one is dropped after
    CLIENT_TIMEOUT. A real ADD meanwhile answers (it hung forever before)."""
    lab = dlab
    n = 4 * cnid.WORKERS if who == "nobody" else cnid.WORKERS
    holder = _hold(lab, n, NOBODY if who == "nobody" else ())
    try:
        nc = make_netconf(lab.url, "n1", True)
        env = {**ADD_ENV, "CNI_NETNS": lab.path(lab.netns("p")), "CNI_PATH": CNI_PATH}
        rc, doc, err, took = _call(lab, [THIN], env, nc, timeout=cnid.CLIENT_TIMEOUT * 4)
        assert rc == 0 and doc["ips"], (doc, err)
        if who == "nobody":  # not even one timeout's wait
            assert took < cnid.CLIENT_TIMEOUT, took
        rc, doc, err, _ = _call(lab, [THIN], {**env, "CNI_COMMAND": "DEL"}, nc)
        assert rc == 0, (doc, err)
        assert lab.allocations() == set()
    finally:
        _stop(holder)


def test_a_request_is_capped_in_size(dlab):
    """More than MAX_REQUEST bytes: CNI error 6, and the daemon serves on."""
    lab = dlab
    code = ("import json, socket\ns = socket.socket(socket.AF_UNIX); s.connect(%r)\n"
            "try:\n    s.sendall(b'cni\\0A=' + b'x' * %d + b'\\0\\0{}'); s.shutdown(1)\n"
            "except OSError:\n    pass\n"
            "r = b''\nwhile True:\n    c = s.recv(65536)\n    if not c: break\n    r += c\n"
            "print(json.dumps(json.loads(r[5:5 + int.from_bytes(r[1:5], 'big')])))\n"
            % (SOCKET_NAME, cnid.MAX_REQUEST + 1))
    cp = subprocess.run(["ip", "netns", "exec", lab.node, "/usr/bin/python3", "-c", code], capture_output=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)
    assert doc["code"] == 6 and "larger than" in doc["msg"], doc
    rc, doc, err, _ = _call(lab, [THIN], {"CNI_COMMAND": "STATUS", "CNI_PATH": CNI_PATH},
                            make_netconf(lab.url, "n1", True))
    assert rc == 0, (doc, err)


SQUAT = """
import socket, sys
sys.path.insert(0, %r)
from client import encode_reply
srv = socket.socket(socket.AF_UNIX)
srv.bind(%r)
srv.listen(8)
print("bound", flush=True)
while True:
    c, _ = srv.accept()
    try:
        c.recv(1 << 20)
        c.sendall(encode_reply(0, b'{"cniVersion": "1.1.0", "supportedVersions": ["6.6.6"]}', b""))
    except OSError:
        pass  # the binary hung up on us
    c.close()
"""


def test_a_binary_does_not_trust_a_daemon_that_is_not_root(dlab):
    """With no daemon running, anyone in the namespace can bind the socket's name: the
    binaries check who answers and run the call themselves instead."""
    lab = dlab
    lab.stop_daemon()
    client_dir = os.path.dirname(os.path.dirname(THIN))
    squat = subprocess.Popen(["ip", "netns", "exec", lab.node, *NOBODY, "/usr/bin/python3", "-c",
                              SQUAT % (client_dir, SOCKET_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert squat.stdout.readline().strip() == "bound"
        for binary in (THIN, os.path.join(BIN, "podnet-cni")):
            rc, doc, err, _ = _call(lab, [binary], {"CNI_COMMAND": "VERSION", "CNI_PATH": CNI_PATH},
                                    {"cniVersion": "1.1.0"})
            assert rc == 0 and "1.1.0" in doc["supportedVersions"], (binary, doc, err)
            assert "6.6.6" not in doc["supportedVersions"]
            assert "uid 65534" in err
    finally:
        _stop(squat)
