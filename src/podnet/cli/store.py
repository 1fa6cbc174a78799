"""`podnet store check | rm`: find and remove stored entries that do not decode.

Readers skip such an entry (and log it with key and revision); this is how an operator
sees them all and deletes one, as `etcdctl get --prefix` and `etcdctl del` would, without
a SQLite shell or etcdctl at hand. `check` exits 1 when it finds any. `rm` deletes by key
(`Kind/namespace/name`, as `check` prints it), and refuses an entry that decodes unless
--force: a good object is deleted with `podnet delete`, which also gives back what it
holds (addresses, ports) and takes its dependents. Thin: the datastore does the work.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from podnet.cli.context import datastore_url
from podnet.cli.errors import UserError
from podnet.cli.output import table
from podnet.datastore.decoding import split_key
from podnet.datastore.interface import (Conflict, Datastore, DatastoreError, NotFound,
                                        Undecodable, open_datastore)


def register(sub: Any) -> None:
    p = sub.add_parser("store", help="find and remove stored entries that do not decode")
    s = p.add_subparsers(dest="store_command", metavar="SUBCOMMAND")
    chk = s.add_parser("check", help="list entries no reader can decode (key, revision, why); "
                                     "exit 1 when there are any")
    chk.add_argument("kind", nargs="?", help="only this kind (as stored: Pod, Service, IPAMBlock...)")
    chk.add_argument("-o", "--output", choices=("table", "json"), default="table")
    chk.set_defaults(func=cmd_check)
    rm = s.add_parser("rm", help="delete entries by key (Kind/namespace/name, as check prints it)")
    rm.add_argument("keys", nargs="+", metavar="KEY")
    rm.add_argument("--revision", type=int, help="only if the entry is still at this revision")
    rm.add_argument("--force", action="store_true",
                    help="also delete an entry that decodes (skips what `podnet delete` does)")
    rm.set_defaults(func=cmd_rm)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _open(args: argparse.Namespace) -> Datastore:
    """The store as it is: no default namespaces written, nothing read but what is asked."""
    url = datastore_url(args)
    try:
        return open_datastore(url)
    except DatastoreError as e:
        raise UserError(f"datastore {url}: {e}") from None


def cmd_check(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        bad = store.check(args.kind)
    except DatastoreError as e:
        raise UserError(f"datastore: {e}") from None
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps([{"key": b.key, "revision": b.revision, "reason": b.reason} for b in bad],
                         indent=2))
    elif bad:
        print(table(["KEY", "REVISION", "PROBLEM"], [(b.key, str(b.revision), b.reason) for b in bad]))
    else:
        print("no undecodable entries" + (f" of kind {args.kind}" if args.kind else ""))
    return 1 if bad else 0


def cmd_rm(args: argparse.Namespace) -> int:
    store = _open(args)
    errors: list[str] = []
    try:
        for key in args.keys:
            try:
                _remove(store, key, args.revision, args.force)
                print(f"removed {key}")
            except (NotFound, Conflict, UserError) as e:
                errors.append(str(e))
            except DatastoreError as e:
                errors.append(f"{key}: datastore: {e}")
    finally:
        store.close()
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


def _remove(store: Datastore, key: str, revision: int | None, force: bool) -> None:
    kind = key.split("/", 1)[0]
    if not force and key not in {b.key for b in store.check(kind)}:
        try:
            obj = store.get(*split_key(key))
        except ValueError as e:
            raise UserError(str(e)) from None
        except Undecodable:
            pass  # turned bad since the check: remove it
        else:
            ns = f" -n {obj.namespace}" if obj.namespace else ""
            raise UserError(f"{key} decodes: delete it with `podnet delete {obj.kind.lower()} "
                            f"{obj.name}{ns}` (or use --force)")
    store.remove(key, revision)
