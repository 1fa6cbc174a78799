"""`podnet get` keeps working over a poisoned store and names the bad entry; `podnet store
check` finds it, `podnet store rm` removes it (and refuses a good object). On SQLite and a
real etcd."""
from __future__ import annotations

import pytest

from podnet.cli.main import main
from poisoning import poison
from test_ds_poison import pod


def run(capsys, url: str, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(["--datastore", url, *argv])
    except SystemExit as e:
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def poisoned(store_backend):
    backend = store_backend  # poison goes into a store's own storage
    store = backend.open()
    store.create(pod("web"))
    rev = poison(store, "Pod", "default", "bad", b"\x00 not json at all")
    return backend.url, rev


def test_get_serves_the_rest_and_warns_with_key_and_revision(capsys, poisoned):
    url, rev = poisoned
    rc, out, err = run(capsys, url, "get", "pods", "-o", "name")
    assert (rc, out) == (0, "pod/web\n")
    assert err.startswith(f"warning: skipped Pod/default/bad (revision {rev}), which cannot be decoded: not ")
    assert "see `podnet store check`" in err
    rc, out, err = run(capsys, url, "get", "pods", "web", "bad")
    assert rc == 1 and "web" in out and "Traceback" not in err
    assert f"error: Pod/default/bad (revision {rev}) cannot be decoded" in err
    assert "podnet store rm Pod/default/bad" in err


def test_store_check_then_rm(capsys, poisoned):
    url, rev = poisoned
    rc, out, _ = run(capsys, url, "store", "check")
    lines = out.splitlines()
    assert rc == 1 and lines[0].split() == ["KEY", "REVISION", "PROBLEM"]
    assert lines[1].split()[:2] == ["Pod/default/bad", str(rev)]
    rc, out, err = run(capsys, url, "store", "rm", "Pod/default/web")
    assert rc == 1 and out == ""
    assert err == ("error: Pod/default/web decodes: delete it with `podnet delete pod web -n default` "
                   "(or use --force)\n")
    rc, out, err = run(capsys, url, "store", "rm", "--revision", str(rev - 1), "Pod/default/bad")
    assert rc == 1 and "stale" in err
    rc, out, err = run(capsys, url, "store", "rm", "--revision", str(rev), "Pod/default/bad")
    assert (rc, out, err) == (0, "removed Pod/default/bad\n", "")
    assert run(capsys, url, "store", "check") == (0, "no undecodable entries\n", "")
    assert run(capsys, url, "get", "pods", "-o", "name") == (0, "pod/web\n", "")
    rc, _, err = run(capsys, url, "store", "rm", "Pod/default/bad")
    assert rc == 1 and "not found" in err
    rc, _, err = run(capsys, url, "store", "rm", "nonsense")
    assert rc == 1 and "is not a store key" in err
