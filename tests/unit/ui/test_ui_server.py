"""`podnet ui` as a process over a real SQLite store, spoken to with real HTTP requests:
the page and its files, refusals (foreign Host and Origin, a POST without the page's
token), GETs that change nothing, and the live stream following the store's watch."""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from podnet.datastore.interface import open_datastore
from builders import make_node, make_pod


class Ui:
    def __init__(self, port: int, url: str, key: str):
        self.port, self.store_url, self.key = port, url, key

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                key: bool = True) -> tuple[int, dict[str, str], bytes]:
        """With the access key as the page's requests carry it (its cookie), unless `key` is False."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        hdrs = {"Host": f"127.0.0.1:{self.port}", **({"Cookie": f"podnet-ui-key={self.key}"} if key else {}),
                **(headers or {})}
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        c.close()
        return out

    def get_json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, body
        return json.loads(body)

    def token(self) -> str:
        _, _, page = self.request("GET", "/")
        m = re.search(rb'name="podnet-token" content="([^"]+)"', page)
        assert m, page[:300]
        return m.group(1).decode()


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[Ui]:
    tmp = tmp_path_factory.mktemp("ui")
    url = f"sqlite://{tmp / 'store.db'}"
    store = open_datastore(url)
    store.create(make_node("n1", ["198.18.0.11", "fd00:198:18::11"]))
    store.create(make_pod("default", "a", ["10.244.0.2", "fd00:10:244::2"], {"app": "a"}, node="n1"))
    store.close()
    env = {**os.environ, "PODNET_HOME": str(tmp / "home")}
    env.pop("PODNET_DATASTORE", None)
    p = subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "--datastore", url, "ui", "--port", "0"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline() if p.stdout else ""
        m = re.search(r"http://127\.0\.0\.1:(\d+)/\?key=([\w-]+)", line)
        assert m, f"no URL: {line!r} {p.stderr.read() if p.stderr and p.poll() is not None else ''}"
        yield Ui(int(m.group(1)), url, m.group(2))
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_page_embeds_a_token_and_ships_its_files(ui):
    status, headers, page = ui.request("GET", "/")
    assert status == 200 and b"<svg" not in page and b'src="/static/app.js"' in page
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert len(ui.token()) >= 24
    for name in ("app.js", "topology.js", "matrix.js", "trace.js", "flows.js", "app.css"):
        status, headers, body = ui.request("GET", f"/static/{name}")
        assert status == 200 and body, name
        assert "cdn" not in body.decode().lower() and "https://" not in body.decode(), name
    assert ui.request("GET", "/static/..%2Fserver.py")[0] == 404
    assert ui.request("GET", "/static/index.html")[0] == 404


def test_nothing_without_the_printed_key(ui):
    """A loopback port is open to every local user: without the key of the printed URL,
    no page (so no POST token), no data; with it, a cookie the page's requests then carry."""
    for path in ("/", "/api/topology", "/static/app.js", "/api/events", "/?key=guess"):
        status, headers, body = ui.request("GET", path, key=False)
        assert status == 401 and b"podnet-token" not in body and b"10.244" not in body, path
        assert "set-cookie" not in headers
    tok = ui.token()
    assert ui.request("POST", "/api/probe", {}, {"Content-Type": "application/json", "X-Podnet-Token": tok},
                      key=False)[0] == 401
    status, headers, body = ui.request("GET", f"/?key={ui.key}", key=False)
    assert status == 200 and b"podnet-token" in body
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"podnet-ui-key={ui.key};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_topology_lists_pods_with_both_addresses(ui):
    t = ui.get_json("/api/topology")
    [n1] = t["nodes"]
    assert [(p["name"], p["ipv4"], p["ipv6"]) for p in n1["pods"]] == [("a", ["10.244.0.2"], ["fd00:10:244::2"])]


@pytest.mark.parametrize("headers,status", [
    ({"Host": "evil.example"}, 421), ({"Host": "evil.example:{port}"}, 421), ({"Host": "127.0.0.1:1"}, 421),
    ({"Origin": "http://evil.example"}, 403), ({"Origin": "null"}, 403),
])
def test_dns_rebinding_and_foreign_origins_refused(ui, headers, status):
    hdrs = {k: v.replace("{port}", str(ui.port)) for k, v in headers.items()}
    for path in ("/", "/api/topology", "/static/app.js"):
        got, _, body = ui.request("GET", path, headers=hdrs)
        assert got == status, (path, body)
        assert b"podnet-token" not in body


def test_post_needs_the_token_and_json(ui):
    body = {"src": "default/a", "dst": "10.244.0.9:80"}
    assert ui.request("POST", "/api/trace", body, {"Content-Type": "application/json"})[0] == 403
    assert ui.request("POST", "/api/probe", {}, {"Content-Type": "application/json",
                                                 "X-Podnet-Token": "guess"})[0] == 403
    tok = ui.token()
    assert ui.request("POST", "/api/trace", body, {"Content-Type": "text/plain", "X-Podnet-Token": tok})[0] == 415
    assert ui.request("POST", "/api/trace", body, {"Content-Type": "application/json", "X-Podnet-Token": tok,
                                                   "Origin": "http://evil.example"})[0] == 403
    # the token and JSON get it through to the action (which refuses a source pod that does not exist)
    status, _, out = ui.request("POST", "/api/trace", {"src": "default/nope", "dst": "10.244.0.9:80"},
                                {"Content-Type": "application/json", "X-Podnet-Token": tok})
    assert status == 400 and b"nope" in out
    assert ui.request("PUT", "/api/topology", {}, {"Content-Type": "application/json", "X-Podnet-Token": tok})[0] == 405
    assert ui.request("GET", "/api/probe")[0] == 405


def test_gets_change_nothing(ui):
    store = open_datastore(ui.store_url)
    try:
        before = (store.revision(), [o.raw for k in ("Pod", "Node", "Namespace") for o in store.list(k).items])
        paths = ["/", "/static/app.js", "/api/topology", "/api/matrix?port=80", "/api/matrix?port=80&family=6",
                 "/api/explain?from=default/a&to=default/a&port=80",
                 "/api/trace?src=default/a&dst=10.244.0.2:80", "/api/trace?src=default/a&dst=nosuch",
                 "/api/flows", "/api/nothing", "/api/probe?port=80"]
        for p in paths:
            ui.request("GET", p)
        ui.request("HEAD", "/api/topology")
        after = (store.revision(), [o.raw for k in ("Pod", "Node", "Namespace") for o in store.list(k).items])
        assert after == before
    finally:
        store.close()


def _events(ui: Ui) -> Iterator[dict[str, Any]]:
    c = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=10)
    c.request("GET", "/api/events", headers={"Host": f"127.0.0.1:{ui.port}", "Cookie": f"podnet-ui-key={ui.key}"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type", "").startswith("text/event-stream")
    try:
        event = ""
        while True:
            line = r.fp.readline().decode()
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "topology":
                yield json.loads(line[6:])
    finally:
        c.close()


def _pods(t: dict[str, Any]) -> set[str]:
    return {p["name"] for n in t["nodes"] for p in n["pods"]}


def test_live_stream_follows_the_store(ui):
    stream = _events(ui)
    assert _pods(next(stream)) == {"a"}
    store = open_datastore(ui.store_url)
    try:
        t0 = time.monotonic()
        store.create(make_pod("default", "b", ["10.244.0.3"], node="n1"))
        while "b" not in _pods(t := next(stream)):
            pass
        assert time.monotonic() - t0 < 2.0
        assert t["revision"] == store.revision()
        store.delete("Pod", "default", "b")
        while "b" in _pods(next(stream)):
            pass
        assert time.monotonic() - t0 < 4.0
    finally:
        store.close()
        stream.close()
