"""A failed `podnet apply` leaves the store as it was, whatever the failure: podnet's own
refusals, a bug (any exception), Ctrl-C. Against a real SQLite store."""
from __future__ import annotations

import pytest

from cli_helpers import run, write
from podnet.apiserver.write import Writer
from podnet.datastore.interface import open_datastore

THREE = """apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}, ports: [{port: 5432}]}
"""


def _snapshot(url: str, capsys=None) -> dict[str, list]:
    if capsys is not None:  # first use: let the CLI create what it creates on any command
        run(capsys, "get", "namespaces")
    s = open_datastore(url)
    try:
        return {k: [o.raw for o in s.list(k).items]
                for k in ("Namespace", "Service", "ServiceIPAllocation")}
    finally:
        s.close()


REAL_APPLY = Writer.apply


def _fail_on(name: str, exc: BaseException):
    def fake(writer, obj):
        if obj.name == name:
            raise exc
        return REAL_APPLY(writer, obj)
    return fake


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("x"), RecursionError("deep"),
                                 MemoryError(), UnicodeEncodeError("utf-8", "\udcff", 0, 1, "x")])
def test_any_exception_undoes_what_was_written(env, capsys, monkeypatch, exc):
    tmp, url = env
    f = write(tmp / "three.yaml", THREE)
    before = _snapshot(url, capsys)
    monkeypatch.setattr(Writer, "apply", _fail_on("db", exc))
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 1 and out == "" and "Traceback" not in err
    assert f"Service shop/db: internal error: {type(exc).__name__}" in err
    assert err.rstrip("\n").endswith("nothing applied: undid 2 earlier object(s) of this apply")
    assert _snapshot(url) == before  # the Namespace, web and web's cluster IP are gone again


def test_ctrl_c_undoes_then_ends_the_command(env, capsys, monkeypatch):
    tmp, url = env
    f = write(tmp / "three.yaml", THREE)
    before = _snapshot(url, capsys)
    monkeypatch.setattr(Writer, "apply", _fail_on("db", KeyboardInterrupt()))
    rc, out, err = run(capsys, "apply", "-f", f)
    assert rc == 130 and out == ""
    assert "nothing applied: undid 2 earlier object(s)" in err
    assert _snapshot(url) == before


def test_an_update_is_rolled_back_too(env, capsys, monkeypatch):
    tmp, url = env
    f = write(tmp / "three.yaml", THREE)
    assert run(capsys, "apply", "-f", f)[0] == 0
    before = _snapshot(url)
    changed = write(tmp / "changed.yaml", THREE.replace("port: 80}", "port: 8080}"))
    monkeypatch.setattr(Writer, "apply", _fail_on("db", ValueError("bad")))
    rc, _, err = run(capsys, "apply", "-f", changed)
    assert rc == 1 and "nothing applied" in err
    after = _snapshot(url)
    strip = lambda snap: {k: [{**o, "metadata": {m: v for m, v in o["metadata"].items()  # noqa: E731
                                                 if m != "resourceVersion"}} for o in objs]
                          for k, objs in snap.items()}
    assert strip(after) == strip(before)


def test_an_undo_that_fails_names_what_is_left(env, capsys, monkeypatch):
    tmp, url = env
    f = write(tmp / "three.yaml", THREE)

    def broken_undo(writer, outcome):
        if outcome.after.name == "web":
            raise OSError("disk gone")
        return real_undo(writer, outcome)
    real_undo = Writer.undo
    monkeypatch.setattr(Writer, "undo", broken_undo)
    monkeypatch.setattr(Writer, "apply", _fail_on("db", RuntimeError("boom")))
    rc, _, err = run(capsys, "apply", "-f", f)
    assert rc == 1
    assert "could not undo service/web (created): OSError: disk gone" in err
    assert "undid 1 of 2 earlier object(s) of this apply; the ones above are left as applied" in err
