"""`podnet serve` ends like a real server (issue 17 §1), on real sockets in a netns of
its own: draining a pod stops new connections at once and still answers the one in
flight; `del` afterwards cuts what is left."""
from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from netnames import unique_netns
from podnet.dataplane.net.sysctl import call_in_netns
from podnet.lab.serve import TCP_WAIT, Server

pytestmark = pytest.mark.root
PORT = 8080


@pytest.fixture
def netns():
    name = unique_netns("srv")
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_drain_stops_accepting_and_finishes_in_flight(netns):
    server = Server()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        server.add_pod("ns/web", netns, [(PORT, "TCP"), (PORT, "UDP")])

        def scenario() -> tuple[bytes, str]:
            held = socket.create_connection(("127.0.0.1", PORT), timeout=3)  # sends nothing yet
            time.sleep(0.02)  # accepted: in flight
            found, inflight = server.drain_pod("ns/web")
            assert found and inflight == 1
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                refused = "accepted"
            except ConnectionRefusedError:
                refused = "refused"
            held.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := held.recv(4096):
                data += chunk
            held.close()
            return data, refused
        data, refused = call_in_netns(netns, scenario)
        assert refused == "refused"
        assert data.startswith(b"HTTP/1.0 200") and data.endswith(b"ns/web 127.0.0.1\n")
        deadline = time.monotonic() + 2 * TCP_WAIT + 1
        while server.drain_pod("ns/web")[1] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.drain_pod("ns/web") == (True, 0)
        assert server.del_pod("ns/web")
    finally:
        server.stop.set()
        t.join(5)
    assert not t.is_alive()


def test_stop_drains_every_pod_then_returns(netns):
    server = Server()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    server.add_pod("ns/a", netns, [(PORT, "TCP")])

    def held() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
        time.sleep(0.02)
        return s
    s = call_in_netns(netns, held)
    server.stop.set()
    data = b""
    while chunk := s.recv(4096):  # the answer still comes (after TCP_WAIT of silence)
        data += chunk
    s.close()
    assert data == b"ns/a 127.0.0.1\n"
    t.join(3)
    assert not t.is_alive()
