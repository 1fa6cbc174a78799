"""Test-wide rules: root tests skip only without root or `ip netns` (and fail instead under
CI=true); every test under tests/kernel and tests/e2e carries the `root` marker; the
machine's own network namespace must be exactly as it was when the session started."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

from needs import missing, root_missing

# Speed is measured in bench/, never asserted in tests: no per-example deadline, which
# fails at random on a loaded machine.
settings.register_profile("podnet", deadline=None)
settings.load_profile("podnet")

ROOT_SKIP_REASON = root_missing()
ROOT_ONLY_DIRS = ("kernel", "e2e")  # tests/<dir>: every test there needs root
TESTS = Path(__file__).resolve().parent


def _in_root_only_dir(item: pytest.Item) -> bool:
    try:
        rel = Path(str(item.path)).resolve().relative_to(TESTS)
    except ValueError:
        return False
    return rel.parts[0] in ROOT_ONLY_DIRS


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true",
                     help="also run the slow tier (tests marked soak: minutes each, PODNET_SOAK_SECONDS)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tier is left out of the default run (CI's): deselected, not skipped."""
    if config.getoption("--soak"):
        return
    soak = [i for i in items if "soak" in i.keywords]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [i for i in items if "soak" not in i.keywords]


def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture: a root test's fixtures build namespaces
    if _in_root_only_dir(item) and "root" not in item.keywords:
        pytest.fail(f"{item.nodeid} lives in a root-only directory but has no `root` marker "
                    "(pytestmark = pytest.mark.root)", pytrace=False)
    if "root" in item.keywords and ROOT_SKIP_REASON is not None:
        missing(ROOT_SKIP_REASON)


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
        "sysctls": _sysctls(ROOT_NS_SYSCTLS),
    }


# What routes or filters the machine's own traffic (IPv6 has no rp_filter)
ROOT_NS_SYSCTLS = ("net/ipv4/ip_forward",
                   *(f"net/ipv4/conf/{c}/{k}" for c in ("all", "default") for k in ("forwarding", "rp_filter")),
                   *(f"net/ipv6/conf/{c}/forwarding" for c in ("all", "default")))


def _sysctls(names: tuple[str, ...]) -> str:
    def read(name: str) -> str:
        try:
            return (Path("/proc/sys") / name).read_text().strip()
        except OSError as e:
            return f"<{e.strerror}>"
    return "\n".join(f"{n}={read(n)}" for n in names)


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
