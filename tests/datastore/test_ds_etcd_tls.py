"""etcd with TLS and client certificates (issue 12 §1): a real etcd started as the lab
starts it (`--client-cert-auth`, certificates from podnet.lab.pki) serves podnet's
datastore over `etcds://` and `etcds+unix://`, and refuses every client that does not
present a certificate signed by the lab's CA; bad or missing certificate files are an
error naming the file before any request."""
from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
import requests

from needs import need_etcd

from podnet.api.objects import from_dict
from podnet.datastore.etcd_server import EtcdServer, ServerTls, tls_query
from podnet.datastore.interface import DatastoreError, open_datastore
from podnet.datastore.transport import Tls
from podnet.lab.pki import SERVER_NAME, LabPKI

pytestmark = pytest.mark.etcd


def _pki(d, name="cptls"):
    p = LabPKI(d, name)
    p.create_ca()
    p.issue_server(["127.0.0.1"])
    return p


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    binary = need_etcd()
    d = tmp_path_factory.mktemp("cp-etcd-tls")
    pki = _pki(d / "pki")
    c = pki.issue_client("cli")
    server = EtcdServer(str(d / "data"), binary=binary, unix_socket=str(d / "etcd.sock:0"),
                        tls=ServerTls(str(pki.ca_cert), str(pki.path(SERVER_NAME, "crt")),
                                      str(pki.path(SERVER_NAME, "key"))),
                        client_tls=Tls(c.ca, c.cert, c.key)).start()
    try:
        yield server, pki, d
    finally:
        server.stop()


def test_pki_files_are_private(tmp_path):
    p = _pki(tmp_path / "pki")
    p.issue_client("agent-n1")
    assert os.stat(p.dir).st_mode & 0o777 == 0o700
    for f in p.dir.iterdir():
        mode = f.stat().st_mode & 0o777
        assert mode == (0o600 if f.suffix == ".key" else 0o644), (f, oct(mode))


def test_tls_datastore_works_tcp_and_unix(tls_etcd):
    server, pki, d = tls_etcd
    url = server.datastore_url("/tls")
    assert url.startswith("etcds://127.0.0.1:") and "cert=" in url
    store = open_datastore(url)
    try:
        rev = store.list("Pod").revision
        seen = []
        stop = threading.Event()

        def watch():
            for ev in store.watch(rev, ("Pod",), stop):
                seen.append((ev.type, ev.object.name))
                stop.set()
                return
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        store.create(from_dict({"kind": "Pod", "metadata": {"name": "p1", "namespace": "default"}}))
        t.join(10)
        assert seen == [("ADDED", "p1")]
    finally:
        store.close()
    c = pki.client("cli")
    unix = open_datastore(f"etcds+unix://{d}/etcd.sock:0/tls?{tls_query(Tls(c.ca, c.cert, c.key))}")
    try:
        assert [p.name for p in unix.list("Pod").items] == ["p1"]
    finally:
        unix.close()


def _handshake(port, ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n"
                      b'{"key":"AA=="}')
            return s.recv(100)


def test_client_without_certificate_is_refused(tls_etcd):
    server, pki, _ = tls_etcd
    c = pki.client("cli")
    assert _handshake(server.client_port, c.ca, c.cert, c.key).startswith(b"HTTP/1.1 200")
    # a TLS client with no certificate: etcd ends the handshake
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(server.client_port, c.ca)
    # plain HTTP: no answer at all
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{server.client_port}/v3/kv/range", json={"key": "AA=="},
                      timeout=5)
    # podnet's own client without TLS is refused as well
    plain = open_datastore(f"etcd://127.0.0.1:{server.client_port}/tls")
    with pytest.raises(DatastoreError):
        plain.list("Pod")
    plain.close()


def test_certificate_of_another_ca_is_refused(tls_etcd, tmp_path):
    server, pki, _ = tls_etcd
    other = _pki(tmp_path / "other", "cp-intruder")
    o = other.issue_client("cli")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(server.client_port, str(pki.ca_cert), o.cert, o.key)
    store = open_datastore(f"etcds://127.0.0.1:{server.client_port}/tls?"
                           + tls_query(Tls(str(pki.ca_cert), o.cert, o.key)))
    with pytest.raises(DatastoreError):
        store.list("Pod")
    store.close()


def test_bad_or_missing_files_are_named(tmp_path):
    p = _pki(tmp_path / "pki")
    c = p.issue_client("cli")
    d = p.issue_client("dns")
    base = "etcds://127.0.0.1:1/x?"
    with pytest.raises(DatastoreError, match=r"cannot read the client certificate .*nope\.crt"):
        open_datastore(base + tls_query(Tls(c.ca, str(tmp_path / "nope.crt"), c.key)))
    with pytest.raises(DatastoreError, match=r"cannot read the CA .*missing-ca\.crt"):
        open_datastore(base + tls_query(Tls(str(tmp_path / "missing-ca.crt"), c.cert, c.key)))
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    with pytest.raises(DatastoreError, match=r"the CA .*junk\.crt is not a PEM certificate"):
        open_datastore(base + tls_query(Tls(str(junk), c.cert, c.key)))
    with pytest.raises(DatastoreError, match=r"do not load as a pair"):
        open_datastore(base + tls_query(Tls(c.ca, c.cert, d.key)))
    with pytest.raises(DatastoreError, match=r"missing: cert, key"):
        open_datastore(base + f"ca={c.ca}")
    with pytest.raises(DatastoreError, match=r"plain-text URL; use etcds://"):
        open_datastore(f"etcd://127.0.0.1:1/x?ca={c.ca}")
