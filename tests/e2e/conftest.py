"""The lab e2e fixtures: one lab per module, always torn down with `down --force`."""
from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lablib import Lab  # noqa: E402


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("podnet-home")


def new_lab(home: Path) -> Lab:
    return Lab("t" + secrets.token_hex(2), home)


@pytest.fixture(scope="module")
def make_lab(lab_home: Path) -> Iterator:
    """Call with `podnet up` options; every lab made is torn down at the end, even on failure."""
    made: list[Lab] = []

    def make(*up_args: str) -> Lab:
        lab = new_lab(lab_home)
        made.append(lab)
        lab.podnet("up", "--name", lab.name, *up_args)
        return lab

    yield make
    for lab in made:
        lab.down()
