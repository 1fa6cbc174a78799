"""Stored bytes to the object of their key, and the report of what does not decode.

One bad entry must not stop every reader of its kind (a list that raises makes every
informer relist forever). So both backends decode each entry here: UTF-8 JSON, an object
whose `kind`, `metadata.name` and `metadata.namespace` are its key's, with `metadata`,
`spec`, `status`, labels and annotations objects where present (what every consumer
reads without checking). Anything else raises `Undecodable`; a reader that skips it calls
`report`, which logs the key and revision once per reader and entry revision and counts it
(`skipped_counts`, exported as a metric by the daemons).
"""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any

from podnet.api.objects import is_namespaced
from podnet.datastore.interface import BadEntry, Undecodable

log = logging.getLogger("podnet.datastore")

_lock = threading.Lock()
_skipped: Counter[str] = Counter()         # kind -> entries skipped by readers of this process
_logged: set[tuple[str, str, int]] = set()  # (reader, key, revision) already logged
_MAX_LOGGED = 10_000


def entry_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def split_key(key: str) -> tuple[str, str, str]:
    """`Kind/namespace/name` -> its parts; ValueError when it has fewer than three."""
    parts = key.split("/", 2)
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise ValueError(f"{key!r} is not a store key: expected Kind/namespace/name "
                         f"(namespace empty for cluster-scoped kinds, e.g. Node//n1)")
    return parts[0], parts[1], parts[2]


def decode_object(kind: str, namespace: str, name: str, value: str | bytes | None,
                  revision: int) -> dict[str, Any]:
    """The stored object as a dict, or Undecodable naming key, revision and reason."""
    try:
        return _checked(kind, namespace, name, _parse(value))
    except ValueError as e:
        raise Undecodable(BadEntry(entry_key(kind, namespace, name), revision, str(e))) from None


def _parse(value: str | bytes | None) -> Any:
    if value is None:
        raise ValueError("no value")
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(value)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at character {e.pos}: {_excerpt(value)})") from None


def _excerpt(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _checked(kind: str, namespace: str, name: str, d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ValueError(f"a JSON {type(d).__name__}, not an object")
    if d.get("kind") != kind:
        raise ValueError(f"its kind is {d.get('kind')!r}, its key's is {kind!r}")
    md = d.get("metadata")
    if not isinstance(md, dict):
        raise ValueError("metadata is not an object")
    if md.get("name") != name:
        raise ValueError(f"its metadata.name is {md.get('name')!r}, its key's is {name!r}")
    if is_namespaced(kind) and md.get("namespace") != namespace:
        raise ValueError(f"its metadata.namespace is {md.get('namespace')!r}, "
                         f"its key's is {namespace!r}")
    for field, holder in (("labels", md), ("annotations", md), ("spec", d), ("status", d)):
        if holder.get(field) is not None and not isinstance(holder[field], dict):
            where = f"metadata.{field}" if holder is md else field
            raise ValueError(f"{where} is not an object")
    return d


def placeholder(kind: str, namespace: str, name: str, revision: int) -> dict[str, Any]:
    """What a reader knows of an entry from its key alone (a DELETED event's object)."""
    md: dict[str, Any] = {"name": name, "resourceVersion": str(revision)}
    if namespace:
        md["namespace"] = namespace
    return {"kind": kind, "metadata": md}


def report(entry: BadEntry, reader: str) -> None:
    """Count a skipped entry; log it the first time this reader skips this revision of it."""
    kind = entry.key.split("/", 1)[0]
    with _lock:
        _skipped[kind] += 1
        seen = (reader, entry.key, entry.revision)
        first = seen not in _logged
        if first and len(_logged) < _MAX_LOGGED:
            _logged.add(seen)
    if first:
        log.warning("%s: skipped undecodable entry %s at revision %d: %s "
                    "(remove it with `podnet store rm %s`)", reader, entry.key, entry.revision,
                    entry.reason, entry.key)


def skipped_counts() -> dict[str, int]:
    """Entries skipped by this process's readers so far, by kind."""
    with _lock:
        return dict(_skipped)


def prometheus_lines() -> list[str]:
    metric = "podnet_datastore_undecodable_skipped_total"
    lines = [f"# HELP {metric} Stored entries a reader skipped because they do not decode.",
             f"# TYPE {metric} counter"]
    return lines + [f'{metric}{{kind="{k}"}} {n}' for k, n in sorted(skipped_counts().items())]
