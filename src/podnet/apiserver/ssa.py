"""Server-side apply (`PATCH` with application/apply-patch+yaml), as kube-apiserver does it.

The applied configuration is the manager's whole intent. Its fields (fieldset.py) are
compared with what other managers own (managed.py): a field another manager owns with a
different value is a conflict (409, one cause per field naming the manager) unless
`force=true`, which takes it over. The fields this manager applied last time and has now
left out are removed, unless another manager owns them too. The rest is merged into the
live object by the Kubernetes types' list keys (smp.py), the Apply entry is set to
exactly what was applied, and the object is written with compare-and-swap (retried on
a concurrent write). An object that does not exist is created. As kube-apiserver, the
manager `kubectl` upgrading an object from client-side apply takes over the fields of its
last-applied annotation without conflicts, and keeps that annotation in step.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Mapping

from podnet.apiserver import smp
from podnet.apiserver.crud import Crud
from podnet.apiserver.fieldset import differs, display, fields_of, remove_at
from podnet.apiserver.managed import Entry, entries_of, now, serialize
from podnet.apiserver.resources import ApiResource
from podnet.apiserver.status import ApiStatus

ATTEMPTS = 10
KUBECTL = "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _check(body: Any, res: ApiResource, name: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiStatus(400, "an apply patch must be an object")
    md = body.get("metadata")
    if not isinstance(md, dict) or md.get("name") != name:
        raise ApiStatus(400, f"the name in the applied configuration must be {name!r}")
    for f, want in (("kind", res.kind), ("apiVersion", res.api_version)):
        if body.get(f) != want:
            raise ApiStatus(400, f"the applied configuration must say {f}: {want}")
    if md.get("managedFields"):
        raise ApiStatus(400, "metadata.managedFields must be empty in an applied configuration")
    return body


def conflicts(live: Mapping[str, Any], applied: Mapping[str, Any], mine: set, others: list[Entry]
              ) -> list[tuple[tuple[str, ...], Entry]]:
    out = []
    for e in others:
        for p in sorted(mine & e.fields):
            if differs(live, applied, p):
                out.append((p, e))
    return out


def merged(live: dict[str, Any], applied: dict[str, Any], kind: str, gone: set) -> dict[str, Any]:
    new = copy.deepcopy(live)
    for p in sorted(gone, key=len, reverse=True):
        remove_at(new, p)
    body = {k: v for k, v in applied.items() if k != "status"}
    return smp.strategic_merge(new, body, kind)


def apply(crud: Crud, res: ApiResource, ns: str, name: str, body: Any,
          params: Mapping[str, str]) -> dict[str, Any]:
    manager = params.get("fieldManager")
    if not manager:
        raise ApiStatus(422, f'{res.kind} "{name}" is invalid: metadata.managedFields.manager: '
                             f"Required value: is required for apply patch")
    force = params.get("force") in ("true", "1")
    applied = _check(body, res, name)
    mine = fields_of(applied, res.kind)
    for _ in range(ATTEMPTS):
        try:
            live: dict[str, Any] | None = crud.get(res, ns, name)
        except ApiStatus as e:
            if e.code != 404:
                raise
            live = None
        entries = entries_of(live)
        prev = next((e for e in entries if e.manager == manager and e.operation == "Apply"), None)
        others = [e for e in entries if e is not prev]
        found = conflicts(live or {}, applied, mine, others)
        if found and not force and not _upgrades_client_side_apply(manager, live, found, res.kind):
            raise conflict_status(res, name, found)
        for p, owner in found:
            owner.fields.discard(p)
        owned_by_others = set().union(*(e.fields for e in others)) if others else set()
        gone = (prev.fields - mine - owned_by_others) if prev else set()
        new = merged(live or {}, applied, res.kind, gone)
        if live is not None and prev is not None and prev.fields == mine and not found \
                and _without_managed(new) == _without_managed(live):
            return live  # nothing changes: no write, no new resourceVersion (kube-apiserver's no-op)
        entry = Entry(manager, "Apply", res.api_version, mine, now())
        md = new.setdefault("metadata", {})
        _sync_last_applied(manager, md, applied)
        md["managedFields"] = serialize([entry] + [e for e in others])
        try:
            if live is None:
                return crud.create(res, ns, new)
            md["resourceVersion"] = live["metadata"].get("resourceVersion")
            return crud.update(res, ns, name, new)
        except ApiStatus as e:
            if e.code == 409 and e.reason in ("Conflict", "AlreadyExists"):
                continue
            raise
    raise ApiStatus(409, f"{res.plural} {name!r}: too many concurrent writes; try again", "Conflict")


def conflict_status(res: ApiResource, name: str, found: list[tuple[tuple[str, ...], Entry]]) -> ApiStatus:
    lines = [f'conflict with "{e.manager}"' + (f' using {e.api_version}' if e.api_version else "")
             + f": {display(p)}" for p, e in found]
    msg = f"Apply failed with {len(found)} conflict{'s' if len(found) != 1 else ''}: " + "\n".join(lines)
    return ApiStatus(409, msg, "Conflict", {
        "name": name, "kind": res.plural, **({"group": res.group} if res.group else {}),
        "causes": [{"reason": "FieldManagerConflict", "field": display(p),
                    "message": f'conflict with "{e.manager}"' + (f" using {e.api_version}" if e.api_version else "")}
                   for p, e in found]})


def _last_applied(live: Mapping[str, Any] | None) -> str | None:
    ann = ((live or {}).get("metadata") or {}).get("annotations") or {}
    v = ann.get(LAST_APPLIED)
    return v if isinstance(v, str) else None


def _upgrades_client_side_apply(manager: str, live: Mapping[str, Any] | None,
                                found: list[tuple[tuple[str, ...], Entry]], kind: str) -> bool:
    """kube-apiserver's lastAppliedManager: `kubectl apply --server-side` over an object
    that client-side apply manages takes over, without conflicts, the fields of its
    last-applied configuration (and only those)."""
    text = _last_applied(live)
    if manager != KUBECTL or text is None:
        return False
    try:
        last = json.loads(text)
    except ValueError:
        return False
    allowed = fields_of(last, kind) if isinstance(last, dict) else set()
    return all(p in allowed for p, _ in found)


def _sync_last_applied(manager: str, md: dict[str, Any], applied: Mapping[str, Any]) -> None:
    """kube-apiserver's lastAppliedUpdater: kubectl's server-side apply keeps an existing
    last-applied annotation equal to what it applied, so a later client-side apply agrees."""
    ann = md.get("annotations")
    if manager != KUBECTL or not isinstance(ann, dict) or LAST_APPLIED not in ann:
        return
    body = copy.deepcopy(dict(applied))
    body_ann = (body.get("metadata") or {}).get("annotations")
    if isinstance(body_ann, dict):
        body_ann.pop(LAST_APPLIED, None)
    ann[LAST_APPLIED] = json.dumps(body, separators=(",", ":"))


def _without_managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    d = dict(obj)
    d["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return d
