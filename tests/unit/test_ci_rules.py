"""Under CI=true a root test that cannot run fails; elsewhere it skips. Shown for real: pytest
run as a non-root user (a user namespace without a mapping: euid 65534) on a root test file."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from needs import in_ci, missing

TESTS = Path(__file__).resolve().parents[1]
ROOT_TEST = TESTS / "kernel" / "cni" / "test_rtnl.py"


def test_missing_skips_outside_ci_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception):
        missing("needs root")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        missing("needs root")


@pytest.mark.slow
def test_a_root_test_run_without_root_skips_but_fails_under_ci():
    if shutil.which("unshare") is None:
        missing("needs util-linux's unshare")
    argv = ["unshare", "--user", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(ROOT_TEST)]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    runs = {ci: subprocess.Popen(argv, cwd=TESTS.parent, env={**env, **({"CI": "true"} if ci else {})},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for ci in (False, True)}
    out = {ci: p.communicate(timeout=120)[0] for ci, p in runs.items()}
    assert runs[False].returncode == 0 and " skipped" in out[False] and "passed" not in out[False], out[False]
    assert runs[True].returncode != 0 and "CI=true: a missing requirement fails the run" in out[True], out[True]


def test_no_test_puts_bench_on_sys_path():
    """bench/dns.py and bench/datastore.py share their names with dnspython's `dns` and with
    tests/datastore: a test that puts bench/ on sys.path breaks the imports of tests that run
    after it, in the full run only (it happened twice). Load a bench module by its path."""
    tests = Path(__file__).resolve().parents[1]
    offenders = [str(p.relative_to(tests)) for p in tests.rglob("*.py") if p != Path(__file__).resolve()
                 and any("sys.path" in line and '"bench"' in line for line in p.read_text().splitlines())]
    assert not offenders, offenders
