"""Reading manifests from files, directories and stdin; writing objects as kubectl prints them.

Pure apart from reading the files it is pointed at. A path is one file, a directory
(recursively, `*.yaml`, `*.yml`, `*.json`, in sorted order) or `-` for stdin. A file may
hold many YAML documents, and a document may be a `List` whose items are objects.
Structure problems (YAML that does not parse, a document that is not an object) raise
with the file and line; semantic checks are validate.py's job.

YAML is read as Kubernetes reads it, except that timestamps stay strings (so objects stay
JSON-serialisable) and a key set twice in one mapping is an error, not a silent overwrite.
Input is bytes that must be UTF-8 (stdin too); every document is measured and copied into
a plain JSON tree by jsontree.py before anyone walks it, so an alias bomb, a cycle or an
object bigger than Kubernetes stores is refused here, in milliseconds.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterable, Mapping, Sequence, TextIO

import yaml

from podnet.api.errors import InvalidObjects, LoadError, Origin
from podnet.api.fields import type_name
from podnet.api.jsontree import MAX_DOCUMENT_BYTES, TreeError, measure, plain
from podnet.api.objects import Resource, from_dict
from podnet.api.validate_meta import object_size_error

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"
MAX_INPUT_BYTES = 64 * 1024 * 1024  # one file, or stdin

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader without the timestamp resolver and with duplicate-key detection."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                dup = key in seen
            except TypeError:
                continue  # unhashable key: the base constructor reports it
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is set twice in one mapping", key_node.start_mark)
            seen.add(key)
        out: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return out


_Loader.yaml_implicit_resolvers = {
    ch: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)


@dataclass(frozen=True)
class Manifest:
    """One object as the user wrote it, and where it came from."""
    origin: Origin
    obj: Resource


# ---- reading --------------------------------------------------------------------------
def load_paths(paths: Sequence[str], stdin: TextIO | None = None) -> list[Manifest]:
    """All manifests of all paths, in order. Raises LoadError / InvalidObjects."""
    out: list[Manifest] = []
    for p in paths:
        out.extend(load_path(p, stdin))
    return out


def load_path(path: str, stdin: TextIO | BinaryIO | None = None) -> list[Manifest]:
    if path == "-":
        return load_bytes(_read_stdin(stdin if stdin is not None else sys.stdin), STDIN_NAME)
    if os.path.isdir(path):
        out: list[Manifest] = []
        for f in manifest_files(path):
            out.extend(load_file(f))
        return out
    return load_file(path)


def _read_stdin(stream: TextIO | BinaryIO) -> bytes:
    """The bytes of stdin: from its binary buffer when it has one, so that bytes that are
    not UTF-8 are refused like a file's, not smuggled in as surrogates."""
    raw = getattr(stream, "buffer", stream)
    try:
        data = raw.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise LoadError(STDIN_NAME, e.strerror or str(e)) from None
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise LoadError(STDIN_NAME, f"not UTF-8 text ({e.reason} at character {e.start})") from None
    return bytes(data)


def manifest_files(directory: str) -> list[str]:
    """Manifest files under `directory`, recursively, sorted by path."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(MANIFEST_SUFFIXES):
                found.append(os.path.join(root, f))
    return sorted(found)


def load_file(path: str) -> list[Manifest]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise LoadError(path, "no such file or directory") from None
    except OSError as e:
        raise LoadError(path, e.strerror or str(e)) from None
    return load_bytes(data, path, is_json=path.endswith(".json"))


def load_bytes(data: bytes, file: str, is_json: bool = False) -> list[Manifest]:
    """Manifests of one file's bytes, which must be UTF-8 and at most MAX_INPUT_BYTES."""
    if len(data) > MAX_INPUT_BYTES:
        raise LoadError(file, f"more than {MAX_INPUT_BYTES} bytes: too big for a manifest file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise LoadError(file, f"not UTF-8 text ({e.reason}, byte {e.start} of the input)",
                        line, column) from None
    return load_text(text, file, is_json)


def load_text(text: str, file: str, is_json: bool = False) -> list[Manifest]:
    """Manifests of one file's text. `file` is only used in messages."""
    docs = _json_documents(text, file) if is_json else _yaml_documents(text, file)
    out: list[Manifest] = []
    problems: list[str] = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue  # an empty document (`---` twice, or only comments)
        origin = Origin(file, index)
        if not isinstance(doc, Mapping):
            problems.append(f"{origin}: expected an object (a mapping with apiVersion and kind), "
                            f"got {type_name(doc)}")
            continue
        try:
            objects = _objects_of(doc, file, index)
        except TreeError as e:
            problems.append(f"{origin}: {e}")
            continue
        for item_origin, item in objects:
            if isinstance(item, str):
                problems.append(f"{item_origin}: {item}")
            else:
                out.append(Manifest(item_origin, from_dict(item)))
    if problems:
        raise InvalidObjects(problems)
    return out


def _objects_of(doc: Mapping[Any, Any], file: str,
                index: int) -> list[tuple[Origin, dict[str, Any] | str]]:
    """The objects of one document (a `List`'s items, or the document itself) as plain
    trees, or a problem message in an object's place. Raises TreeError for the document."""
    measure(doc, MAX_DOCUMENT_BYTES)
    is_list = doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List")
                                            and isinstance(doc.get("items"), list))
    if not is_list:
        _check_object(doc)
        return [(Origin(file, index), plain(doc))]
    items = doc.get("items")
    if not isinstance(items, list):
        return [(Origin(file, index), f"List: items: expected a list, got {type_name(items)}")]
    out: list[tuple[Origin, dict[str, Any] | str]] = []
    for i, item in enumerate(items):
        io = Origin(file, index, i)
        if not isinstance(item, Mapping):
            out.append((io, f"expected an object, got {type_name(item)}"))
            continue
        try:
            _check_object(item)
            out.append((io, plain(item)))
        except TreeError as e:
            out.append((io, str(e)))
    return out


def _check_object(obj: Any) -> None:
    err = object_size_error(obj)
    if err is not None:
        raise TreeError(err.path, err.message)


def _yaml_documents(text: str, file: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = e.problem or e.context or "invalid YAML"
        if e.context and e.problem:
            cm = e.context_mark
            where = f" at line {cm.line + 1}" if cm is not None and mark is not None \
                and cm.line != mark.line else ""
            msg = f"{e.problem} ({e.context}{where})"
        if mark is None:
            raise LoadError(file, msg) from None
        raise LoadError(file, msg, mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as e:
        raise LoadError(file, f"invalid YAML: {e}") from None
    except RecursionError:
        raise LoadError(file, "nested too deeply") from None


def _json_documents(text: str, file: str) -> list[Any]:
    if not text.strip():
        return []
    try:
        return [json.loads(text, parse_constant=_no_constant)]
    except json.JSONDecodeError as e:
        raise LoadError(file, e.msg, e.lineno, e.colno) from None
    except RecursionError:
        raise LoadError(file, "nested too deeply") from None
    except ValueError as e:
        raise LoadError(file, str(e)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# ---- writing --------------------------------------------------------------------------
def as_list(objs: Iterable[Resource | Mapping[str, Any]]) -> dict[str, Any]:
    """A `List` as kubectl prints several objects."""
    items = [o.to_dict() if isinstance(o, Resource) else dict(o) for o in objs]
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def to_yaml(data: Resource | Mapping[str, Any]) -> str:
    d = data.to_dict() if isinstance(data, Resource) else data
    return yaml.dump(d, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=10**9)


def to_json(data: Resource | Mapping[str, Any]) -> str:
    d = data.to_dict() if isinstance(data, Resource) else data
    return json.dumps(d, indent=4, sort_keys=True, ensure_ascii=False)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Block style; lists not indented under their key, as kubectl prints them."""
