"""Every code name the README and the design pages cite exists, and they cite no path of a
developer's machine.

A code name is what a page writes as code (in backticks) and what reads as ours: a repository
path (`lab/topology.py`, `tests/unit/dns`, `bench/`), a bare module file (`records.py`, found
in the page's own package or anywhere in the repository), or a dotted name rooted in podnet
(`datastore.cache.Informer`, `podnet.cni.runtime`, `lab.up.addon_objects(spec)`,
`calc/policy/sync.affected_chains`), resolved by importing the module and reading the
attribute. Everything else (field paths like `spec.nodeName`, sysctls, DNS names, runtime files
such as `lab.json`) is not ours to check and is left alone.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src" / "podnet"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "design").glob("*.md"))]
PACKAGES = frozenset(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
REPO_DIRS = frozenset({"src", "tests", "bench", "docs", "examples", ".ci"})
# Looks like a dotted code name but is a key of a CNI network configuration
NOT_CODE = frozenset({"ipam.type"})
MACHINE_PATHS = re.compile(r"(?<![\w.])/(work|home|root)/")
DATA_FILE = re.compile(r"\.(json|db|url|sock|log|pid|conf|yaml|yml|md|nft|txt|toml|arpa|local|test)$")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"```.*?```", re.S)


@dataclass(frozen=True)
class Citation:
    page: str
    text: str


def cited(page: Path) -> list[Citation]:
    body = FENCE.sub("", page.read_text())
    return [Citation(page.name, span) for span in CODE_SPAN.findall(body)]


def page_package(page: str) -> Path | None:
    stem = Path(page).stem
    return SRC / stem if stem in PACKAGES else None


def resolve_dotted(name: str, package: Path | None) -> str | None:
    """None when `name` is podnet.<module>[.<attr>...] (or one of the page's own package);
    else why not."""
    parts = name.split(".")
    roots = [["podnet"]] if parts[0] == "podnet" else []
    if parts[0] in PACKAGES:
        roots.append(["podnet"])
    if package is not None and (package / f"{parts[0]}.py").exists():
        roots.append(["podnet", package.name])
    if parts[0] == "podnet":
        parts = parts[1:]
    for root in roots:
        for cut in range(len(parts), 0, -1):
            module = ".".join(root + parts[:cut])
            try:
                obj = importlib.import_module(module)
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return f"{module} has no {'.'.join(parts[cut:])}"
                obj = getattr(obj, attr)
            return None
    return f"no podnet module {'.'.join(parts)}"


def check_path(path: str, package: Path | None) -> str | None:
    """None when the repository path exists (a directory for a trailing /, at least one
    match for a glob); else why not. A trailing `.attr` on a module path is resolved."""
    first = path.split("/")[0]
    if first in REPO_DIRS:
        base = ROOT
    elif first in PACKAGES or first == "podnet":
        base = SRC.parent
        path = path if first == "podnet" else f"podnet/{path}"
    else:
        return None  # not a path of ours (cni.dev/..., lib/ipam, pids/)
    head, _, last = path.rpartition("/")
    if "." in last and not last.endswith(".py") and not DATA_FILE.search(last) and "*" not in last:
        module, _, attr = last.partition(".")  # calc/policy/sync.affected_chains
        return resolve_dotted(f"{head.replace('/', '.')}.{module}.{attr}".removeprefix("podnet."), None)
    if "*" in path:
        return None if list(base.glob(path)) else f"nothing matches {path}"
    target = base / path
    if path.endswith("/"):
        return None if target.is_dir() else f"no directory {target.relative_to(ROOT)}"
    return None if target.exists() else f"no file {target.relative_to(ROOT)}"


def check_bare_file(name: str, package: Path | None) -> str | None:
    if package is not None and (package / name).exists():
        return None
    for top in ("src", "tests", "bench"):
        if next((ROOT / top).rglob(name), None) is not None:
            return None
    return f"no file named {name} in src/, tests/ or bench/"


def problem(c: Citation) -> str | None:
    text, package = c.text.strip(), page_package(c.page)
    if text in NOT_CODE or re.search(r"[\s<>$|\[\]{}:?=@,'\"]", text) or text.startswith(("/", "-")):
        return None
    if "/" in text:
        return check_path(text, package)
    if text.endswith(".py"):
        return check_bare_file(text, package)
    name = re.sub(r"\(.*$", "", text)  # a call as written: lab.up.addon_objects(spec)
    if DOTTED.fullmatch(name) and not DATA_FILE.search(name):
        first = name.split(".")[0]
        ours = first == "podnet" or first in PACKAGES or (
            package is not None and (package / f"{first}.py").exists())
        return resolve_dotted(name, package) if ours else None
    return None


CITATIONS = [c for page in PAGES for c in cited(page)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_code_name_a_page_cites_exists(page: Path) -> None:
    bad = [f"`{c.text}`: {why}" for c in cited(page) if (why := problem(c)) is not None]
    assert not bad, f"{page.relative_to(ROOT)} cites what does not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_cites_a_path_of_a_developers_machine(page: Path) -> None:
    hits = [line.strip() for line in page.read_text().splitlines() if MACHINE_PATHS.search(line)]
    assert not hits, f"{page.relative_to(ROOT)} names a path of this machine:\n" + "\n".join(hits)


@pytest.mark.parametrize("text,why", [
    ("lab.up.ADDONS", "podnet.lab.up has no ADDONS"),
    ("agent.ROLE_SPECS", "podnet.agent has no ROLE_SPECS"),
    ("lab/nowhere.py", "no file src/podnet/lab/nowhere.py"),
    ("tests/unit/nowhere/", "no directory tests/unit/nowhere"),
    ("calc/services.no_such_function", "podnet.calc.services has no no_such_function"),
    ("nowhere_at_all.py", "no file named nowhere_at_all.py in src/, tests/ or bench/"),
])
def test_the_check_catches_names_that_do_not_exist(text: str, why: str) -> None:
    assert problem(Citation("lab.md", text)) == why


@pytest.mark.parametrize("text", ["spec.nodeName", "net.ipv4.ip_forward", "web.shop.svc.cluster.local",
                                  "lab.json", "podnet.io/netns", "cni.dev/attachments", "ipam.type",
                                  "/etc/netns/<netns>/resolv.conf", "datastore.cache.Informer",
                                  "lab.up.addon_objects(spec)", "records.py", "lab/topology.py"])
def test_the_check_leaves_alone_what_exists_or_is_not_code(text: str) -> None:
    assert problem(Citation("dns.md", text)) is None


def test_the_pages_cite_enough_code_to_check() -> None:
    checked = [c for c in CITATIONS if "/" in c.text or c.text.endswith(".py") or DOTTED.fullmatch(c.text)]
    assert len(checked) > 100  # the extractor still finds the pages' code names
