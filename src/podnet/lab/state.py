"""The lab's state directory: what `podnet down` needs to undo `podnet up`.

`$PODNET_HOME/labs/<name>/` (PODNET_HOME: see podnet.cli.context) holds `lab.json` (the
spec and the names of every namespace created), `pids/<what>.pid` (one file per process
started, written before anything else can go wrong), `datastore.url`, logs and the
SQLite store. Processes are found again only through these PID files and `ip netns pids`
of the lab's namespaces, never by matching command lines.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def podnet_home() -> Path:
    """`$PODNET_HOME`; else /var/lib/podnet for root, ~/.local/share/podnet for others.
    The CLI's context (current lab, default store) lives here too."""
    env = os.environ.get("PODNET_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/podnet")
    return Path.home() / ".local" / "share" / "podnet"


def labs_root() -> Path:
    return podnet_home() / "labs"


class LabState:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @classmethod
    def for_lab(cls, name: str) -> "LabState":
        return cls(labs_root() / name)

    # ---- files --------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.dir / "lab.json").exists()

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def create(self) -> None:
        """The lab dir is its owner's alone (0700): it holds the store (SQLite), the etcd
        socket and the lab's keys (issue 12 §1)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for sub in ("pids", "logs"):
            self.path(sub).mkdir(parents=True, exist_ok=True)

    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.path("lab.json").read_text())
        except (OSError, ValueError):
            return {}

    def write_meta(self, meta: dict[str, Any]) -> None:
        tmp = self.path("lab.json.tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        tmp.replace(self.path("lab.json"))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One change of the lab's shape at a time (`podnet node add/delete`): an exclusive
        lock on `<lab>/lock`, held until the change is done."""
        with open(self.path("lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def datastore_url(self) -> str:
        return self.path("datastore.url").read_text().strip()

    def write_datastore_url(self, url: str) -> None:
        self.path("datastore.url").write_text(url + "\n")

    def log(self, what: str) -> Path:
        return self.path("logs", f"{what}.log")

    # ---- processes -----------------------------------------------------------------
    def record_pid(self, what: str, pid: int) -> None:
        self.path("pids").mkdir(parents=True, exist_ok=True)
        self.path("pids", f"{what}.pid").write_text(f"{pid}\n")

    def pids(self) -> dict[str, int]:
        out = {}
        d = self.path("pids")
        if d.is_dir():
            for f in sorted(d.glob("*.pid")):
                try:
                    out[f.stem] = int(f.read_text().strip())
                except (OSError, ValueError):
                    continue
        return out

    def forget_pid(self, what: str) -> None:
        try:
            self.path("pids", f"{what}.pid").unlink()
        except FileNotFoundError:
            pass

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
