"""`podnet apply | get | describe`: the object commands, with kubectl's habits (`delete`: delete.py).

Thin: load and validate with podnet.api, write with podnet.apiserver (the one write path), print with output.py and
describe.py. A bad object anywhere in what `apply -f` was given applies nothing.
"""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Any, Callable, Sequence

from podnet.api.codec import Manifest, as_list, load_paths, to_json, to_yaml
from podnet.api.errors import InvalidObjects, LoadError
from podnet.api.fields import label_value_error, qualified_name_error
from podnet.api.objects import Resource, is_namespaced
from podnet.api.selector import LabelSelector
from podnet.api.validate import label_of, validate_manifests
from podnet.apiserver.apply import Outcome
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.cli.context import open_store
from podnet.cli.describe import describe
from podnet.cli.errors import UserError
from podnet.cli.kinds import KindInfo, ref, resolve_kind
from podnet.cli.output import Ctx, render_table
from podnet.datastore.interface import Datastore, DatastoreError, NotFound, Undecodable

OUTPUTS = ("wide", "yaml", "json", "name")
# Namespaces exist before what lives in them; pools and nodes before pods need them.
ORDER = {"Namespace": 0, "IPPool": 1, "Node": 2}


def register(sub: Any) -> None:
    p = sub.add_parser("apply", help="create or update objects from manifests (kubectl apply)")
    p.add_argument("-f", "--filename", action="append", required=True,
                   help="file, directory (recursive) or - for stdin; repeatable")
    p.add_argument("-n", "--namespace", help="namespace for objects that name none")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("get", help="list objects (kubectl get)")
    p.add_argument("kind", help="pods, services, deployments, namespaces, networkpolicies, "
                                "endpointslices, ippools, nodes (or short names)")
    p.add_argument("names", nargs="*")
    _ns_args(p)
    p.add_argument("-o", "--output", choices=OUTPUTS)
    p.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("describe", help="show an object in detail (kubectl describe)")
    p.add_argument("kind")
    p.add_argument("names", nargs="*")
    _ns_args(p)
    p.add_argument("-l", "--selector")
    p.set_defaults(func=cmd_describe)


def store_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A datastore that fails mid-command is the user's one-line error, not a traceback."""
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except DatastoreError as e:
            raise UserError(f"datastore: {e}") from None
    return wrapper


def _ns_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")


def fail(lines: Sequence[str]) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return 1


# ---- apply ----------------------------------------------------------------------------
def load_checked(paths: Sequence[str], namespace: str | None) -> list[Manifest]:
    """Load and validate; raises UserError (one problem) or InvalidObjects (many)."""
    try:
        manifests = load_paths(paths)
    except LoadError as e:
        raise UserError(str(e)) from None
    if not manifests:
        raise UserError(f"no objects passed to apply (in {', '.join(paths)})")
    if namespace:
        manifests = [_with_namespace(m, namespace) for m in manifests]
    validate_manifests(manifests)
    return manifests


def _with_namespace(m: Manifest, namespace: str) -> Manifest:
    if not is_namespaced(m.obj.kind) or not isinstance(m.obj.raw.get("metadata"), dict):
        return m
    given = m.obj.raw["metadata"].get("namespace")
    if given and given != namespace:
        raise UserError(f"{m.origin} {label_of(m.obj)}: the namespace from the manifest "
                        f"({given}) does not match --namespace {namespace}")
    obj = m.obj.with_metadata(namespace=namespace)
    return Manifest(m.origin, obj)


def _check_namespaces(store: Datastore, manifests: Sequence[Manifest]) -> list[str]:
    existing = {o.name for o in store.list("Namespace").items}
    existing |= {m.obj.name for m in manifests if m.obj.kind == "Namespace"}
    return [f"{m.origin} {label_of(m.obj)}: namespace \"{m.obj.namespace}\" not found "
            f"(create it first, or in the same apply)"
            for m in manifests if is_namespaced(m.obj.kind) and m.obj.namespace not in existing]


def apply_all(store: Datastore, manifests: Sequence[Manifest]) -> list[Outcome]:
    """Apply validated manifests all-or-nothing; raises InvalidObjects (lines to print).
    For other commands (`podnet demo`, `podnet up`) that apply manifests themselves."""
    problems = _check_namespaces(store, manifests)
    if problems:
        raise InvalidObjects(problems)
    ordered = sorted(manifests, key=lambda m: ORDER.get(m.obj.kind, 9))
    writer = Writer(store)
    done: list[Outcome] = []
    for m in ordered:
        try:
            done.append(writer.apply(m.obj))
        except (WriteError, DatastoreError) as e:
            raise InvalidObjects([f"{m.origin} {label_of(m.obj)}: {e}"]
                                 + _undo_all(writer, done)) from None
        except Exception as e:  # noqa: BLE001 - a bug still must not leave half an apply
            raise InvalidObjects([f"{m.origin} {label_of(m.obj)}: internal error: "
                                  f"{type(e).__name__}: {e}"] + _undo_all(writer, done)) from None
        except BaseException:  # Ctrl-C, SystemExit: undo, then let it end the command
            for line in _undo_all(writer, done):
                print(f"error: {line}", file=sys.stderr)
            raise
    return done


def _undo_all(writer: Writer, done: Sequence[Outcome]) -> list[str]:
    """Undo `done` (newest first); lines that say what was undone, or what could not be."""
    failed: list[str] = []
    for o in reversed(done):
        try:
            writer.undo(o)
        except Exception as e:  # noqa: BLE001 - keep undoing the others, then say which stayed
            failed.append(f"could not undo {ref(o.after)} ({o.action}): {type(e).__name__}: {e}")
    if not done:
        return []
    if failed:
        return failed + [f"undid {len(done) - len(failed)} of {len(done)} earlier object(s) "
                         f"of this apply; the ones above are left as applied"]
    return [f"nothing applied: undid {len(done)} earlier object(s) of this apply"]


def apply_files(store: Datastore, paths: Sequence[str], namespace: str | None = None) -> list[Outcome]:
    """`podnet apply -f` as a function: raises UserError or InvalidObjects."""
    return apply_all(store, load_checked(paths, namespace))


@store_errors
def cmd_apply(args: argparse.Namespace) -> int:
    try:
        manifests = load_checked(args.filename, args.namespace)
    except InvalidObjects as e:
        return fail(e.lines)
    store = open_store(args)
    try:
        done = apply_all(store, manifests)
    except InvalidObjects as e:
        return fail(e.lines)
    finally:
        store.close()
    for out in done:
        print(f"{ref(out.after)} {out.action}")
    return 0


# ---- get ------------------------------------------------------------------------------
def _selector(text: str | None) -> LabelSelector | None:
    if not text:
        return None
    try:
        sel = LabelSelector.parse(text)
    except ValueError as e:
        raise UserError(f"bad label selector {text!r}: {e}") from None
    for r in sel.requirements:
        problem = qualified_name_error(r.key) and f"key {r.key!r} {qualified_name_error(r.key)}"
        for v in r.values:
            problem = problem or (label_value_error(v) and f"value {v!r} {label_value_error(v)}")
        if problem:
            raise UserError(f"bad label selector {text!r}: {problem}")
    return sel


def fetch(store: Datastore, info: KindInfo, args: argparse.Namespace) -> tuple[list[Resource], list[str]]:
    """The objects a get/describe names, and the not-found messages."""
    namespaced = is_namespaced(info.kind)
    ns = (args.namespace or "default") if namespaced else ""
    if args.names:
        found, missing = [], []
        for name in args.names:
            try:
                found.append(store.get(info.kind, ns, name))
            except NotFound:
                missing.append(f'{info.plural} "{name}" not found'
                               + (f' in namespace "{ns}"' if namespaced else ""))
            except Undecodable as e:
                missing.append(str(e))
        return found, missing
    all_ns = getattr(args, "all_namespaces", False)
    res = store.list(info.kind, None if (all_ns or not namespaced) else ns, _selector(args.selector))
    for bad in res.skipped:
        print(f"warning: skipped {bad.key} (revision {bad.revision}), which cannot be decoded: "
              f"{bad.reason}; see `podnet store check`", file=sys.stderr)
    return res.items, []


# `get all`, as kubectl: the workload and service kinds of a namespace.
ALL_KINDS = ("pods", "services", "deployments")


def resolve_kinds(text: str) -> list[KindInfo]:
    """`svc`, `svc,pods`, `all`."""
    names = [n for n in text.split(",") if n]
    if not names:
        raise UserError("name a resource type, e.g. pods or svc")
    out: list[KindInfo] = []
    for n in names:
        for info in ([resolve_kind(a) for a in ALL_KINDS] if n.lower() == "all" else [resolve_kind(n)]):
            if info not in out:
                out.append(info)
    return out


@store_errors
def cmd_get(args: argparse.Namespace) -> int:
    infos = resolve_kinds(args.kind)
    if len(infos) > 1 and args.names:
        raise UserError("name objects of one kind only (get KIND NAME...)")
    store = open_store(args)
    try:
        found = []
        missing: list[str] = []
        for info in infos:
            objs, miss = fetch(store, info, args)
            found.append((info, objs))
            missing += miss
        _print_objects(store, found, args)
    finally:
        store.close()
    return fail(missing) if missing else 0


def _print_objects(store: Datastore, found: list[tuple[KindInfo, list[Resource]]],
                   args: argparse.Namespace) -> None:
    out = args.output
    objs = [o for _, group in found for o in group]
    if out == "name":
        for o in objs:
            print(ref(o))
    elif out in ("yaml", "json"):
        if not objs and args.names:
            return
        data: Any = objs[0] if len(objs) == 1 and args.names else as_list(objs)
        text = to_yaml(data) if out == "yaml" else to_json(data)
        print(text.rstrip("\n"))
    elif not objs:
        if not args.names:
            print(_no_resources(found[0][0], args), file=sys.stderr)
    else:
        ctx = Ctx(store=store)
        tables = []
        for info, group in found:
            if not group:
                continue
            with_ns = bool(args.all_namespaces) and is_namespaced(info.kind)
            # several kinds: names carry their kind, as kubectl prints them
            prefix = f"{info.qualified}/" if len(found) > 1 else ""
            tables.append(render_table(info.kind, group, ctx, wide=out == "wide",
                                       with_namespace=with_ns, name_prefix=prefix))
        print("\n\n".join(tables))


def _no_resources(info: KindInfo, args: argparse.Namespace) -> str:
    if getattr(args, "all_namespaces", False) or not is_namespaced(info.kind):
        return "No resources found"
    return f"No resources found in {args.namespace or 'default'} namespace."


# ---- describe -------------------------------------------------------------------------
@store_errors
def cmd_describe(args: argparse.Namespace) -> int:
    info = resolve_kind(args.kind)
    store = open_store(args)
    try:
        objs, missing = fetch(store, info, args)
        texts = [describe(store, o) for o in objs]
    finally:
        store.close()
    if texts:
        print("\n\n".join(t.rstrip("\n") for t in texts))
    elif not missing:
        print(_no_resources(info, args), file=sys.stderr)
    return fail(missing) if missing else 0
