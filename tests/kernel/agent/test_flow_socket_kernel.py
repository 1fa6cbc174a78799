"""The agent's flow socket names every pod's connections: it answers root only, and no
client can hold it (issue 18, the hardening issue 12 asks of every listener). The real
recorder's socket, bound in a test namespace; the unprivileged side is uid 65534
(setpriv), as in the CNI daemon's security tests. Each test failed before the checks."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from netnames import unique_netns
from podnet import setns
from podnet.agent import flows
from podnet.agent.flow_server import CLIENT_TIMEOUT, MAX_CLIENTS, FlowRecorder, query

pytestmark = pytest.mark.root

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(b"\\0" + sys.argv[1].encode())
try:
    s.sendall(b'{"since": 0}\\n')
except BrokenPipeError:
    pass
sys.stdout.write(s.makefile().read())
"""


@pytest.fixture
def recorder():
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run a client as uid 65534")
    ns = unique_netns("flows")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    rec = FlowRecorder("n1", lambda: ({}, flows.Names()), socket_name=f"pnt-flows-{ns}")
    try:
        with setns.switched(ns):
            rec._listen()
        yield ns, rec
    finally:
        rec.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _connect(ns, rec) -> socket.socket:
    with setns.switched(ns):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + rec.socket_name)  # blocking: a full backlog waits, not EAGAIN
    s.settimeout(10)
    return s


def test_root_is_answered_and_nobody_is_refused(recorder):
    ns, rec = recorder
    stats, recs = query(ns, socket_name=rec.socket_name)
    assert stats["node"] == "n1" and list(recs) == []
    cp = subprocess.run(["ip", "netns", "exec", ns, *NOBODY, sys.executable, "-c", CLIENT, rec.socket_name],
                        capture_output=True, timeout=20)
    lines = cp.stdout.decode().splitlines()
    assert cp.returncode == 0, cp.stderr.decode()
    assert len(lines) == 1 and "root only, not uid 65534" in json.loads(lines[0])["error"]


def test_silent_clients_cannot_hold_the_socket(recorder):
    """MAX_CLIENTS+8 connections that say nothing: no more than MAX_CLIENTS threads serve
    them, the rest get 'busy' at once, and after CLIENT_TIMEOUT root is answered again."""
    ns, rec = recorder
    before = threading.active_count()
    held = [_connect(ns, rec) for _ in range(MAX_CLIENTS + 8)]
    try:
        time.sleep(0.3)
        assert threading.active_count() - before <= MAX_CLIENTS
        busy = [s.makefile().readline() for s in held[MAX_CLIENTS:]]
        assert all("busy" in json.loads(b)["error"] for b in busy)
        with pytest.raises(OSError, match="busy"):
            query(ns, socket_name=rec.socket_name)
        time.sleep(CLIENT_TIMEOUT + 1)
        stats, _ = query(ns, socket_name=rec.socket_name)
        assert stats["node"] == "n1"
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("request_line, error", [
    (b"x" * 5000 + b"\n", "longer than"),
    (b"not json\n", "bad request"),
    (b"[1, 2]\n", "bad request"),
    (b'{"since": "yesterday"}\n', "bad request"),
])
def test_garbage_gets_an_error_and_changes_nothing(recorder, request_line, error):
    ns, rec = recorder
    s = _connect(ns, rec)
    with s:
        s.sendall(request_line)
        answer = s.makefile().readline()
    assert error in json.loads(answer)["error"]
    stats, _ = query(ns, socket_name=rec.socket_name)
    assert stats["node"] == "n1" and stats["stored"] == 0
