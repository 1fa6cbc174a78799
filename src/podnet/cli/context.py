"""Where the CLI keeps its state and which datastore a command talks to.

`PODNET_HOME` (env) is the root: default `/var/lib/podnet` for root, else
`~/.local/share/podnet`. The current lab's name lives in `$PODNET_HOME/current`; a lab's
files live in `$PODNET_HOME/labs/<name>/`. The datastore URL comes from, first match wins:
`--datastore`, env `PODNET_DATASTORE`, `$PODNET_HOME/labs/<current>/datastore.url`, and
`sqlite://$PODNET_HOME/podnet.db`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.write import Writer
from podnet.cli.errors import UserError
from podnet.lab.state import podnet_home
from podnet.datastore.interface import Datastore, DatastoreError, open_datastore


def lab_dir(name: str) -> Path:
    return podnet_home() / "labs" / name


def current_lab() -> str | None:
    try:
        name = (podnet_home() / "current").read_text().strip()
    except OSError:
        return None
    return name or None


def set_current_lab(name: str | None) -> None:
    """Make `name` the current lab; None forgets the current lab."""
    path = podnet_home() / "current"
    if name is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".current.{os.getpid()}")
    tmp.write_text(name + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees a half-written name


def datastore_url(args: argparse.Namespace | Any = None) -> str:
    given = getattr(args, "datastore", None) if args is not None else None
    if given:
        return str(given)
    env = os.environ.get("PODNET_DATASTORE")
    if env:
        return env
    lab = current_lab()
    if lab:
        try:
            url = (lab_dir(lab) / "datastore.url").read_text().strip()
        except OSError:
            url = ""
        if url:
            return url
    return f"sqlite://{podnet_home() / 'podnet.db'}"


def open_store(args: argparse.Namespace | Any = None) -> Datastore:
    """Open the datastore for a command; make sure `default` and `kube-system` exist."""
    url = datastore_url(args)
    try:
        store = open_datastore(url)
        ensure_default_namespaces(Writer(store))
    except DatastoreError as e:
        raise UserError(f"datastore {url}: {e}") from None
    except OSError as e:
        raise UserError(f"datastore {url}: {e.strerror or e}") from None
    return store
