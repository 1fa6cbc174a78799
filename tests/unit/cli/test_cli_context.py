"""Where the CLI finds its datastore, and the small formatting helpers."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from podnet.cli import context
from podnet.cli.output import human_duration, table


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PODNET_HOME", str(tmp_path))
    monkeypatch.delenv("PODNET_DATASTORE", raising=False)
    return tmp_path


def test_datastore_url_precedence(home, monkeypatch):
    assert context.datastore_url(argparse.Namespace(datastore=None)) == f"sqlite://{home}/podnet.db"
    context.set_current_lab("lab1")
    assert context.current_lab() == "lab1"
    # a current lab without a datastore.url file changes nothing
    assert context.datastore_url(None) == f"sqlite://{home}/podnet.db"
    d = context.lab_dir("lab1")
    assert d == home / "labs" / "lab1"
    d.mkdir(parents=True)
    (d / "datastore.url").write_text("etcd://127.0.0.1:2379/lab1\n")
    assert context.datastore_url(None) == "etcd://127.0.0.1:2379/lab1"
    monkeypatch.setenv("PODNET_DATASTORE", "sqlite:///env.db")
    assert context.datastore_url(argparse.Namespace(datastore=None)) == "sqlite:///env.db"
    assert context.datastore_url(argparse.Namespace(datastore="sqlite:///arg.db")) == "sqlite:///arg.db"
    context.set_current_lab(None)
    assert context.current_lab() is None


def test_default_home(monkeypatch):
    monkeypatch.delenv("PODNET_HOME", raising=False)
    expected = Path("/var/lib/podnet") if context.os.geteuid() == 0 else Path.home() / ".local/share/podnet"
    assert context.podnet_home() == expected


def test_open_store_creates_default_namespaces_once(home):
    s = context.open_store(argparse.Namespace(datastore=f"sqlite://{home}/x.db"))
    try:
        rev = s.revision()
        context.ensure_default_namespaces(context.Writer(s))
        assert s.revision() == rev
        assert [n.name for n in s.list("Namespace").items] == ["default", "kube-system"]
    finally:
        s.close()


def test_bad_datastore_url_is_a_user_error(home):
    with pytest.raises(context.UserError) as ei:
        context.open_store(argparse.Namespace(datastore="mysql://x"))
    assert str(ei.value).startswith("datastore mysql://x: unknown datastore URL")


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (0, "0s"), (119, "119s"), (120, "2m"), (150, "2m30s"), (600, "10m"),
    (3 * 3600, "3h"), (3 * 3600 + 300, "3h5m"), (47 * 3600, "47h"), (2 * 86400 + 3600, "2d1h"),
    (30 * 86400, "30d"), (3 * 365 * 86400, "3y"), (10 * 365 * 86400, "10y")])
def test_human_duration_is_kubectls(seconds, text):
    assert human_duration(seconds) == text


def test_table_alignment():
    assert table(["NAME", "X"], [["a", "1"], ["longer", "22"]]) == "NAME     X\na        1\nlonger   22"


def test_namespaces_written_by_others_get_their_name_label(home):
    from podnet.api.objects import from_dict
    from podnet.datastore.interface import open_datastore
    url = f"sqlite://{home}/y.db"
    s = open_datastore(url)
    s.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}))
    s.close()
    s = context.open_store(argparse.Namespace(datastore=url))
    try:
        assert {n.name: n.labels for n in s.list("Namespace").items} == {
            "default": {"kubernetes.io/metadata.name": "default"},
            "kube-system": {"kubernetes.io/metadata.name": "kube-system"}}
    finally:
        s.close()
