"""metadata.managedFields: who set which field, kept on every write through the API. Pure.

Each entry is {manager, operation (Apply | Update), apiVersion, time, fieldsType FieldsV1,
fieldsV1}. A write by manager M (`?fieldManager=`, else the client's User-Agent product,
as kube-apiserver derives it) takes the fields it changed from every other manager
(Update); server-side apply (ssa.py) sets its Apply entry to exactly what it applied.
A request that sends managedFields different from the stored ones sets them as sent
(kubectl's client-side-to-server-side apply upgrade does that); entries left owning
nothing are dropped.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Mapping

from podnet.apiserver.fieldset import Path, differs, fields_of, from_fields_v1, to_fields_v1


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    fields: set[Path] = field(default_factory=set)
    time: str = ""
    subresource: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                             "apiVersion": self.api_version, "time": self.time or now(),
                             "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            d["subresource"] = self.subresource
        return d


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def manager_name(params: Mapping[str, str], user_agent: str | None) -> str:
    if params.get("fieldManager"):
        return str(params["fieldManager"])
    product = (user_agent or "").split("/", 1)[0].strip()
    return product[:128] or "unknown"


def entries_of(raw: Mapping[str, Any] | None) -> list[Entry]:
    out = []
    for e in ((raw or {}).get("metadata") or {}).get("managedFields") or []:
        if isinstance(e, dict) and e.get("manager"):
            out.append(Entry(str(e["manager"]), str(e.get("operation") or "Update"),
                             str(e.get("apiVersion") or ""), from_fields_v1(e.get("fieldsV1") or {}),
                             str(e.get("time") or ""), str(e.get("subresource") or "")))
    return out


def serialize(entries: list[Entry]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in entries if e.fields]


def record_update(live: Mapping[str, Any] | None, new: dict[str, Any], manager: str,
                  api_version: str, kind: str, subresource: str = "") -> None:
    """Set new's managedFields for an Update by `manager` (in place)."""
    md = new.setdefault("metadata", {})
    if not isinstance(md, dict):
        return  # not an object: the write path refuses it
    sent = md.get("managedFields")
    stored = ((live or {}).get("metadata") or {}).get("managedFields")
    if sent is not None and sent != stored:
        return  # the client sets them on purpose
    have = fields_of(new, kind, with_status=True)
    changed = {p for p in have if differs(live, new, p)} if live else set(have)
    entries = entries_of(live)
    mine = next((e for e in entries if e.manager == manager and e.operation == "Update"
                 and e.subresource == subresource), None)
    if mine is None and changed:
        mine = Entry(manager, "Update", api_version, set(), subresource=subresource)
        entries.append(mine)
    for e in entries:
        if e is mine:
            e.fields = (e.fields | changed) & have
            e.time, e.api_version = now(), api_version
        else:
            e.fields = (e.fields - changed) & have
    md["managedFields"] = serialize(entries)
    if not md["managedFields"]:
        md.pop("managedFields")

