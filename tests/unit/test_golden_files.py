"""The golden-file check itself: a missing golden fails, regenerating is explicit and never in CI."""
from __future__ import annotations

import pytest

from golden_files import UPDATE_ENV, check_golden


def test_a_missing_golden_fails_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    path = tmp_path / "new.nft"
    with pytest.raises(pytest.fail.Exception, match="missing"):
        check_golden(path, "table inet podnet {}\n")
    assert not path.exists()


def test_a_different_text_fails(tmp_path, monkeypatch):
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    path = tmp_path / "g.nft"
    path.write_text("old\n")
    with pytest.raises(AssertionError, match="differs"):
        check_golden(path, "new\n")
    assert path.read_text() == "old\n"


def test_update_is_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv(UPDATE_ENV, "1")
    monkeypatch.delenv("CI", raising=False)
    path = tmp_path / "sub" / "g.nft"
    check_golden(path, "new\n")
    assert path.read_text() == "new\n"


def test_update_is_refused_under_ci(tmp_path, monkeypatch):
    monkeypatch.setenv(UPDATE_ENV, "1")
    monkeypatch.setenv("CI", "true")
    path = tmp_path / "g.nft"
    with pytest.raises(pytest.fail.Exception, match="CI"):
        check_golden(path, "new\n")
    assert not path.exists()
