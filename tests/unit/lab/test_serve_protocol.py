"""lab/serve.py's answer format and control requests, without sockets in any netns."""
from __future__ import annotations

from podnet.lab.serve import Server, answer_line, client_ip, http_answer
from podnet.lab.serve_control import handle_request


def test_client_ip_unmaps_ipv4_and_drops_scope():
    assert client_ip(("::ffff:10.244.0.5", 1, 0, 0)) == "10.244.0.5"
    assert client_ip(("fd00::5", 1, 0, 0)) == "fd00::5"
    assert client_ip(("fe80::1%eth0", 1, 0, 2)) == "fe80::1"
    assert answer_line("ns/p", ("10.0.0.1", 5)) == b"ns/p 10.0.0.1\n"


def test_http_answer_has_length_and_body():
    a = http_answer(b"ns/p 1.2.3.4\n", head=False)
    assert a.startswith(b"HTTP/1.0 200 OK\r\n") and a.endswith(b"\r\n\r\nns/p 1.2.3.4\n")
    assert b"Content-Length: 13\r\n" in a
    assert not http_answer(b"x\n", head=True).endswith(b"x\n")


def test_bad_control_requests_get_clear_errors():
    s = Server()
    assert "unknown op" in handle_request(s, {"op": "explode"})["error"]
    assert "bad request" in handle_request(s, {"op": "add"})["error"]
    assert "bad request" in handle_request(s, {"op": "add", "pod": "a/b", "ports": [["x", "TCP"]]})["error"]
    assert handle_request(s, {"op": "del", "pod": "a/b"}) == {"ok": True, "found": False}
    assert handle_request(s, {"op": "drain", "pod": "a/b"}) == {"ok": True, "found": False, "inflight": 0}
    assert handle_request(s, {"op": "list"})["pods"] == {}
