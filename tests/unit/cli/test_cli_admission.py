"""Admission hooks: a plugin's changes are stored, its refusal names the object and undoes
the whole apply, and release runs after delete."""
from __future__ import annotations

import pytest

from podnet.apiserver import admission
from cli_helpers import run, stored, write

TWO = """apiVersion: v1
kind: Service
metadata: {name: a}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {ports: [{port: 80}]}
"""


@pytest.fixture
def plugin(monkeypatch, tmp_path):
    calls: list[tuple[str, str]] = []

    def admit_service(store, svc):
        calls.append(("admit", svc.name))
        if svc.name == "b":
            raise ValueError("service CIDR 10.96.0.0/12 is full")
        return svc.with_spec(dict(svc.spec, clusterIP="10.96.0.7", clusterIPs=["10.96.0.7"]))

    def release_service(store, svc):
        calls.append(("release", svc.name))

    # A plugin that refuses on demand, to drive the CLI's undo path (the real Service
    # admission is tested in test_cli_serviceips.py).
    monkeypatch.setitem(admission.PLUGINS, "Service", (admit_service, release_service))
    monkeypatch.setenv("PODNET_HOME", str(tmp_path / "home"))
    url = f"sqlite://{tmp_path / 'store.db'}"
    monkeypatch.setenv("PODNET_DATASTORE", url)
    return calls, url, tmp_path


def test_admitted_fields_are_stored_and_released_on_delete(plugin, capsys):
    calls, url, tmp = plugin
    f = write(tmp / "a.yaml", TWO.split("---\n")[0])
    assert run(capsys, "apply", "-f", f) == (0, "service/a created\n", "")
    assert stored(url, "Service", "default", "a").spec["clusterIP"] == "10.96.0.7"
    assert run(capsys, "get", "svc", "a")[1].splitlines()[1].split()[2] == "10.96.0.7"
    assert run(capsys, "delete", "svc", "a")[0] == 0
    assert calls == [("admit", "a"), ("release", "a")]


def test_refusal_names_the_object_and_undoes_the_apply(plugin, capsys):
    calls, url, tmp = plugin
    f = write(tmp / "two.yaml", TWO)
    rc, out, err = run(capsys, "apply", "-f", f)
    assert (rc, out) == (1, "")
    assert err == (f"error: {f} doc 2 Service default/b: service CIDR 10.96.0.0/12 is full\n"
                   "error: nothing applied: undid 1 earlier object(s) of this apply\n")
    assert run(capsys, "get", "svc", "-o", "name")[1] == ""
    assert calls == [("admit", "a"), ("admit", "b"), ("release", "a")]


def test_kinds_without_a_plugin_pass_unchanged():
    from podnet.api.objects import from_dict
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert admission.admit(None, pod) is pod
    admission.release(None, pod)
