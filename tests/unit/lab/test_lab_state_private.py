"""The lab dir is its owner's alone (issue 12 §1): it holds the SQLite store, etcd's unix
socket and the lab's keys; even when it existed before with a wider mode."""
from __future__ import annotations

from podnet.lab.state import LabState


def test_lab_dir_is_private(tmp_path):
    d = tmp_path / "labs" / "cpx"
    LabState(d).create()
    assert d.stat().st_mode & 0o777 == 0o700
    d.chmod(0o755)
    LabState(d).create()
    assert d.stat().st_mode & 0o777 == 0o700
