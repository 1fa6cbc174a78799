"""What a test needs from the machine (root, `ip netns`, the etcd binary), and what happens
when it is missing: a skip on a developer's machine, a failure under CI=true, where a test
that did not run must never look like one that passed."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Skip the test for `reason`; under CI=true fail it instead."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing requirement fails the run)", pytrace=False)
    pytest.skip(reason)


def root_missing() -> str | None:
    """Why root tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is not available here"
    return None


def need_etcd(binary: str = ETCD_BIN) -> str:
    """The etcd binary's path; missing() when it is not installed."""
    if not os.path.exists(binary):
        missing(f"etcd binary not found at {binary} (install Debian's etcd-server)")
    return binary
