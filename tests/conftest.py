"""Test-wide rules: root tests skip only without root or `ip netns`; the machine's own
network namespace must be exactly as it was when the session started."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _root_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is not available here"
    return None


ROOT_SKIP_REASON = _root_reason()


def pytest_collection_modifyitems(config, items):
    if ROOT_SKIP_REASON is None:
        return
    skip = pytest.mark.skip(reason=ROOT_SKIP_REASON)
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def _root_ns_state() -> dict[str, str]:
    def out(argv: list[str]) -> str:
        cp = subprocess.run(argv, capture_output=True, text=True)
        return cp.stdout if cp.returncode == 0 else f"<{argv[0]} failed: {cp.stderr.strip()}>"
    # Link lines minus counters/state that change by themselves.
    links = "\n".join(sorted(line.split(" state ")[0] for line in out(["ip", "-o", "link"]).splitlines()))
    return {
        "links": links,
        "routes": out(["ip", "route"]),
        "routes6": out(["ip", "-6", "route"]),
        "nft": out(["nft", "list", "tables"]) if shutil.which("nft") else "",
    }


@pytest.fixture(scope="session", autouse=True)
def root_namespace_untouched():
    """The lab's first safety rule, checked around the whole run."""
    if ROOT_SKIP_REASON is not None:
        yield
        return
    before = _root_ns_state()
    yield
    after = _root_ns_state()
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"the root network namespace changed during the tests: {changed}\nbefore={before}\nafter={after}"
