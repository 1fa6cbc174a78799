"""bench/<name>.py for the unit tests, loaded by its path: bench/ on sys.path would let
bench/dns.py shadow dnspython's `dns` and bench/datastore.py the tests' `datastore`
package for every later test module (tests/unit/test_ci_rules.py refuses it)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
