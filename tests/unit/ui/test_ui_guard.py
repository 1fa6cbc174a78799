"""The web view's request checks (podnet.cli.ui.guard): loopback peers only, this
listener's Host, no foreign Origin, the access key on every request, the page's token on
a POST."""
from __future__ import annotations

import pytest

from podnet.cli.ui.guard import Refused, Request, check, is_loopback

PORT, TOKEN, KEY = 8040, "tok-123", "key-456"


def req(method: str = "GET", peer: str | None = "127.0.0.1", host: str | None = f"127.0.0.1:{PORT}",
        origin: str | None = None, token: str | None = None, key: str | None = KEY) -> Request:
    return Request(method, peer, host, origin, token, key)


@pytest.mark.parametrize("peer,ok", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("198.18.0.11", False), ("10.244.0.2", False), ("0.0.0.0", False), ("::", False),
    ("fe80::1%eth0", False), ("::ffff:198.18.0.1", False), ("", False), (None, False), ("not-an-ip", False),
])
def test_only_loopback_peers(peer, ok):
    assert is_loopback(peer) is ok
    if ok:
        check(req(peer=peer), PORT, TOKEN, KEY)
    else:
        with pytest.raises(Refused) as e:
            check(req(peer=peer), PORT, TOKEN, KEY)
        assert e.value.status == 403


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"])
def test_hosts_of_this_listener(host):
    check(req(host=host), PORT, TOKEN, KEY)


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1", f"127.0.0.1:{PORT + 1}",
                                  f"localhost.evil.example:{PORT}", "", None])
def test_other_hosts_refused_dns_rebinding(host):
    with pytest.raises(Refused) as e:
        check(req(host=host), PORT, TOKEN, KEY)
    assert e.value.status == 421


@pytest.mark.parametrize("origin", [f"http://evil.example:{PORT}", "null", f"https://127.0.0.1:{PORT}",
                                    f"http://127.0.0.1:{PORT + 1}", "http://127.0.0.1"])
def test_foreign_origins_refused(origin):
    with pytest.raises(Refused):
        check(req(origin=origin), PORT, TOKEN, KEY)
    with pytest.raises(Refused):
        check(req("POST", origin=origin, token=TOKEN), PORT, TOKEN, KEY)


def test_own_origin_and_token_allow_a_post():
    check(req("POST", origin=f"http://127.0.0.1:{PORT}", token=TOKEN), PORT, TOKEN, KEY)
    check(req("POST", host=f"localhost:{PORT}", origin=f"http://localhost:{PORT}", token=TOKEN), PORT, TOKEN, KEY)


@pytest.mark.parametrize("token", [None, "", "tok-12", "tok-1234", "TOK-123"])
def test_post_without_the_token_refused(token):
    with pytest.raises(Refused) as e:
        check(req("POST", token=token), PORT, TOKEN, KEY)
    assert e.value.status == 403


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_refused(method):
    with pytest.raises(Refused) as e:
        check(req(method, token=TOKEN), PORT, TOKEN, KEY)
    assert e.value.status == 405


@pytest.mark.parametrize("key", [None, "", "key-45", "key-4567", "KEY-456", TOKEN])
def test_every_request_needs_the_access_key(key):
    """Any local user reaches a loopback port: without the printed key, nothing (not even
    the page, which holds the POST token)."""
    for r in (req(key=key), req("POST", token=TOKEN, key=key)):
        with pytest.raises(Refused) as e:
            check(r, PORT, TOKEN, KEY)
        assert e.value.status == 401 and "?key=" in str(e.value)
