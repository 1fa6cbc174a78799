"""A list request's query: labelSelector, fieldSelector, limit and continue. Pure.

Field selectors support what kube-apiserver supports for the served kinds that podnet
cares about: metadata.name and metadata.namespace everywhere, spec.nodeName and
status.phase for pods (`=`, `==`, `!=`, comma = and). A continue token carries the
revision of the first page and the last key returned; the next page lists the store
again and starts after that key (the store has no snapshot reads, so a later page sees
later writes, as kube-apiserver's inconsistent continuation does after compaction).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from podnet.api.selector import LabelSelector
from podnet.apiserver.status import ApiStatus

FIELDS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "status.phase": ("status", "phase"),
    "spec.type": ("spec", "type"),
}
_KIND_FIELDS = {"Pod": {"spec.nodeName", "status.phase"}, "Service": {"spec.type"}}


@dataclass(frozen=True)
class FieldTerm:
    path: str
    value: str
    equal: bool

    def matches(self, raw: Mapping[str, Any]) -> bool:
        cur: Any = raw
        for p in FIELDS[self.path]:
            cur = cur.get(p) if isinstance(cur, Mapping) else None
        have = "" if cur is None else str(cur)
        return (have == self.value) == self.equal


def label_selector(text: str | None) -> LabelSelector | None:
    if not text:
        return None
    try:
        return LabelSelector.parse(text)
    except ValueError as e:
        raise ApiStatus(400, f"unable to parse requirement: {e}") from None


def field_selector(text: str | None, kind: str) -> list[FieldTerm]:
    terms: list[FieldTerm] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            path, value, equal = *part.split("!=", 1), False
        elif "==" in part:
            path, value, equal = *part.split("==", 1), True
        elif "=" in part:
            path, value, equal = *part.split("=", 1), True
        else:
            raise ApiStatus(400, f'invalid selector: \'{part}\'; can\'t understand \'{part}\'')
        path = path.strip()
        if path not in ("metadata.name", "metadata.namespace") and path not in _KIND_FIELDS.get(kind, ()):
            raise ApiStatus(400, f'"{path}" is not a known field selector: only "metadata.name", '
                                 f'"metadata.namespace"' + "".join(f', "{f}"' for f in sorted(_KIND_FIELDS.get(kind, ()))))
        terms.append(FieldTerm(path, value.strip(), equal))
    return terms


def fields_match(terms: Sequence[FieldTerm], raw: Mapping[str, Any]) -> bool:
    return all(t.matches(raw) for t in terms)


def encode_continue(revision: int, last_key: tuple[str, str]) -> str:
    data = json.dumps({"v": 1, "rv": revision, "ns": last_key[0], "name": last_key[1]})
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        pad = "=" * (-len(token) % 4)
        d = json.loads(base64.urlsafe_b64decode(token + pad))
        return int(d["rv"]), (str(d["ns"]), str(d["name"]))
    except (ValueError, KeyError, TypeError):
        raise ApiStatus(400, "continue key is not valid: decode failed") from None


def check_version(params: Mapping[str, str], revision: int) -> None:
    """resourceVersion/resourceVersionMatch of a list, answered from the store's latest
    state (at `revision`): "" and "0" and NotOlderThan an older revision are served;
    Exact any other revision is 410 Expired (the store keeps no old snapshots to list);
    a revision from the future is 504, as kube-apiserver's "Too large resource version"."""
    rv, match = params.get("resourceVersion", ""), params.get("resourceVersionMatch", "")
    if match not in ("", "Exact", "NotOlderThan"):
        raise ApiStatus(400, f"resourceVersionMatch: {match!r} is not Exact or NotOlderThan")
    if rv in ("", "0"):
        if match == "Exact":
            raise ApiStatus(400, "resourceVersionMatch Exact needs a resourceVersion other than 0")
        return
    try:
        want = int(rv)
    except ValueError:
        raise ApiStatus(400, f"resourceVersion {rv!r} is not a resource version") from None
    if want > revision:
        raise ApiStatus(504, f"Too large resource version: {want}, current: {revision}", "Timeout")
    if match == "Exact" and want != revision:
        raise ApiStatus(410, f"too old resource version: {want} ({revision}): only the latest state "
                             f"can be listed here", "Expired")


def limit_of(text: str | None) -> int:
    if not text:
        return 0
    try:
        n = int(text)
    except ValueError:
        raise ApiStatus(400, f"limit: {text!r} is not an integer") from None
    return max(n, 0)


def page(items: list[dict[str, Any]], limit: int, after: tuple[str, str] | None,
         revision: int) -> tuple[list[dict[str, Any]], str, int | None]:
    """(this page, continue token or "", remainingItemCount or None). Items are sorted
    by (namespace, name)."""
    def key(o: Mapping[str, Any]) -> tuple[str, str]:
        md = o.get("metadata") or {}
        return str(md.get("namespace") or ""), str(md.get("name") or "")
    if after is not None:
        items = [o for o in items if key(o) > after]
    if not limit or len(items) <= limit:
        return items, "", None
    out = items[:limit]
    return out, encode_continue(revision, key(out[-1])), len(items) - limit
