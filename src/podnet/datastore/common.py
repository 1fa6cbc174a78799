"""Backend-independent object handling: keys, metadata stamping, selector filtering.

Both backends call these so an object looks the same whichever store wrote it: the
namespace is normalised, `create` stamps uid and creationTimestamp, every write sets
`metadata.resourceVersion` to the write's revision as a string (as Kubernetes does).
"""
from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from podnet.api.objects import Resource, from_dict, is_namespaced
from podnet.api.selector import LabelSelector
from podnet.datastore.interface import DatastoreError


class InvalidObject(DatastoreError):
    """The object cannot be stored (no kind, no name, not JSON-serialisable)."""


def norm_namespace(kind: str, namespace: str | None) -> str:
    """Cluster-scoped kinds live in namespace ""; a namespaced kind given "" means "default"."""
    if not is_namespaced(kind):
        return ""
    return namespace or "default"


def object_key(obj: Resource) -> tuple[str, str, str]:
    """(kind, namespace, name) of an object about to be written; raises InvalidObject."""
    kind, name = obj.kind, obj.name
    if not kind:
        raise InvalidObject(f"object {obj.raw.get('metadata', {})!r}: missing field 'kind'")
    if not name:
        raise InvalidObject(f"{kind} object: missing field 'metadata.name'")
    for what, value in (("kind", kind), ("metadata.name", name),
                        ("metadata.namespace", obj.namespace)):
        if "/" in value or "\x00" in value:
            raise InvalidObject(f"{kind} {name!r}: field {what}={value!r} must not contain '/'")
    return kind, norm_namespace(kind, obj.namespace), name


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy_normalised(obj: Resource) -> tuple[dict[str, Any], dict[str, Any]]:
    """A deep copy and its metadata, with metadata.namespace as the store keys it."""
    d = copy.deepcopy(obj.raw)
    md = d.setdefault("metadata", {})
    if is_namespaced(obj.kind):
        md["namespace"] = norm_namespace(obj.kind, md.get("namespace"))
    else:
        md.pop("namespace", None)
    return d, md


def prepare_create(obj: Resource) -> dict[str, Any]:
    """A deep copy with metadata.namespace, uid and creationTimestamp filled in."""
    d, md = _copy_normalised(obj)
    md.setdefault("uid", str(uuid.uuid4()))
    md.setdefault("creationTimestamp", now_rfc3339())
    return d


def prepare_update(obj: Resource, stored: dict[str, Any]) -> dict[str, Any]:
    """A deep copy that keeps the stored uid and creationTimestamp when the caller left
    them out (a user re-applying a manifest does not know them)."""
    d, md = _copy_normalised(obj)
    old_md = stored.get("metadata") or {}
    for field in ("uid", "creationTimestamp"):
        if field not in md and field in old_md:
            md[field] = old_md[field]
    return d


def stamp(d: dict[str, Any], revision: int) -> dict[str, Any]:
    d.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return d


def encode(d: dict[str, Any]) -> str:
    try:
        return json.dumps(d, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as e:
        md = d.get("metadata") or {}
        raise InvalidObject(f"{d.get('kind')} {md.get('namespace', '')}/{md.get('name')}: "
                            f"not storable as JSON: {e}") from None


def decode(text: str | bytes) -> Resource:
    return from_dict(json.loads(text))


def selected(obj: Resource, selector: LabelSelector | None) -> bool:
    return selector is None or selector.matches(obj.labels)
