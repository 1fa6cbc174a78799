"""`podnet trace` wired end to end without root: the demo's objects in a SQLite store,
prediction only (no lab on this machine: nothing to confirm)."""
from __future__ import annotations

import json

import pytest

import trace_demo_state as demo
from podnet.cli.main import main
from podnet.datastore.interface import open_datastore


@pytest.fixture()
def url(tmp_path, monkeypatch):
    monkeypatch.setenv("PODNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PODNET_DATASTORE", raising=False)
    u = f"sqlite://{tmp_path / 'store.db'}"
    s = open_datastore(u)
    try:
        for o in demo.objects(("40-deny-web.yaml",)):
            s.create(o)
    finally:
        s.close()
    return u


def test_text(url, capsys):
    assert main(["--datastore", url, "trace", "-n", "shop", "client", "web", "--endpoint", "10.244.0.66"]) == 0
    out = capsys.readouterr().out
    assert "DNAT 10.96.0.20:80 -> 10.244.0.66:8080" in out
    assert "DROP: isolated by shop/web-deny-all" in out
    assert "not confirmed: no lab on this machine" in out


def test_json(url, capsys):
    assert main(["--datastore", url, "trace", "-n", "shop", "client", "203.0.113.10:80", "-o", "json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["request"]["outcome"] == "delivered" and t["confirmation"]["ok"] is None
    assert [h["kind"] for h in t["request"]["hops"]] == ["pod", "node", "underlay", "router", "outside"]


@pytest.mark.parametrize("argv,msg", [
    (["-n", "shop", "nobody", "web"], "pod shop/nobody not found"),
    (["-n", "shop", "client", "nothing-here"], "no pod, Service or address"),
    (["-n", "shop", "client", "web:99999"], "port '99999'"),
    (["-n", "shop", "client", "web", "--endpoint", "10.1.1.1"], "10.1.1.1 is not an endpoint"),
])
def test_bad_input_is_one_line(url, capsys, argv, msg):
    assert main(["--datastore", url, "trace", *argv]) == 1
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
