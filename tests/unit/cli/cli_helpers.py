"""Running `podnet` in-process for the CLI tests."""
from __future__ import annotations

from pathlib import Path

from podnet.cli.main import main
from podnet.datastore.interface import open_datastore


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def stored(url: str, kind: str, ns: str, name: str):
    s = open_datastore(url)
    try:
        return s.get(kind, ns, name)
    finally:
        s.close()
