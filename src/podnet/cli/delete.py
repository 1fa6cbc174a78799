"""`podnet delete -f FILE | KIND NAME...`: as kubectl's. A pod is marked terminating with
its grace period (kubectl's rules for --grace-period, --now and --force) and, with --wait
(the default), waited for until it is gone; everything else goes at once, through the one
write path."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from podnet.api.errors import InvalidObjects
from podnet.api.objects import Resource
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.cli.context import open_store
from podnet.cli.errors import UserError
from podnet.cli.kinds import info_of, resolve_kind
from podnet.cli.objects import ORDER, fail, fetch, load_checked, store_errors
from podnet.datastore.interface import Datastore, NotFound


def register(sub: Any) -> None:
    p = sub.add_parser("delete", help="delete objects by manifest or by name (kubectl delete)")
    p.add_argument("kind", nargs="?")
    p.add_argument("names", nargs="*")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument("-n", "--namespace")
    p.add_argument("-l", "--selector")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds a pod gets to end (default: its terminationGracePeriodSeconds); "
                        "0 only with --force")
    p.add_argument("--force", action="store_true",
                   help="with --grace-period=0: delete at once, without waiting for the pod to stop")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--wait", default="true", choices=("true", "false"),
                   help="wait until what was deleted is gone (default true, as kubectl)")
    p.add_argument("--timeout", type=float, default=0,
                   help="seconds to wait (default: the longest grace period + 60)")
    p.set_defaults(func=cmd_delete)


@store_errors
def cmd_delete(args: argparse.Namespace) -> int:
    if args.filename:
        if args.kind:
            raise UserError("give either -f FILE or KIND NAME, not both")
        try:
            targets = [m.obj for m in load_checked(args.filename, args.namespace)]
        except InvalidObjects as e:
            return fail(e.lines)
        # What lives in a namespace goes before the namespace.
        targets.sort(key=lambda o: -ORDER.get(o.kind, 9))
    elif args.kind:
        info = resolve_kind(args.kind)
        if not args.names and not args.selector:
            raise UserError(f"delete {info.plural}: name the objects to delete (or use -l)")
        targets = None
    else:
        raise UserError("delete: give -f FILE or KIND NAME")
    grace = _grace_period(args)
    store = open_store(args)
    writer = Writer(store)
    errors: list[str] = []
    pending: list[Resource] = []  # marked terminating: wait for them to be gone
    try:
        if targets is None:
            args.all_namespaces = False
            targets, errors = fetch(store, info, args)
        for obj in targets:
            try:
                gone = writer.delete(obj.kind, obj.namespace, obj.name, grace_period=grace)
                print(f'{info_of(gone.kind).qualified} "{gone.name}" deleted')
                if gone.deletion_timestamp:
                    pending.append(gone)
            except NotFound:
                if not args.ignore_not_found:
                    errors.append(f'{info_of(obj.kind).plural} "{obj.name}" not found')
            except WriteError as e:
                errors.append(str(e))
        if args.wait == "true" and pending:
            errors += _wait_gone(store, pending, args.timeout)
    finally:
        store.close()
    if args.ignore_not_found:
        errors = [e for e in errors if "not found" not in e]
    return fail(errors) if errors else 0


def _grace_period(args: argparse.Namespace) -> int | None:
    """kubectl's rules: --now is 1 s; 0 needs --force (else it means 1 s); --force alone
    is 0; negative is the object's own (None)."""
    if args.now:
        if args.grace_period >= 0:
            raise UserError("--now and --grace-period cannot be given together")
        return 1
    if args.force:
        if args.grace_period < 0:
            return 0
        print("Warning: Immediate deletion does not wait for confirmation that the running "
              "resource has been terminated. The resource may continue to run on the cluster "
              "indefinitely.", file=sys.stderr)
        return args.grace_period
    if args.grace_period == 0:
        return 1
    return None if args.grace_period < 0 else args.grace_period


def _wait_gone(store: Datastore, objs: list[Resource], timeout: float) -> list[str]:
    """Until every object (by uid) is gone from the store, as `kubectl delete --wait`."""
    import time
    longest = max(int(o.metadata.get("deletionGracePeriodSeconds") or 0) for o in objs)
    deadline = time.monotonic() + (timeout or longest + 60)
    left = list(objs)
    while left:
        still = []
        for o in left:
            try:
                if store.get(o.kind, o.namespace, o.name).uid == o.uid:
                    still.append(o)
            except NotFound:
                pass
        left = still
        if left and time.monotonic() > deadline:
            return [f'timed out waiting for {info_of(o.kind).plural} "{o.name}" to be deleted' for o in left]
        if left:
            time.sleep(0.05)
    return []
