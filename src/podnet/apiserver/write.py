"""`Writer`: the one way objects get into the store (create, update, status, apply, delete).

Each write validates the object (api.validate, the messages `podnet apply` prints),
checks that its namespace exists, runs admission (ClusterIPs, NodePorts, Namespace
defaults), and writes with compare-and-swap on the revision it read. What admission took
for a write that then failed is given back. Refusals: apiserver.errors (Invalid,
Forbidden, BadRequest) and the datastore's NotFound / AlreadyExists / Conflict.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

from podnet.api.objects import INTERNAL_KINDS, Resource, from_dict, is_namespaced
from podnet.api.validate import validate_object
from podnet.apiserver import deleting
from podnet.apiserver.admission import AdmissionError, admit, release
from podnet.apiserver.apply import Outcome, carry_allocated, check_immutable, merged_for_apply, stamped_manifest
from podnet.apiserver.errors import GaveUp, Invalid
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore, NotFound

ATTEMPTS = 20


class Writer:
    """The write path over one datastore. Cheap to make; holds no state but the store."""

    def __init__(self, store: Datastore):
        self.store = store

    # ---- create / update ----------------------------------------------------------------
    def create(self, obj: Resource) -> Resource:
        """Raises Invalid, NotFound (its namespace), AlreadyExists."""
        self._validate(obj)
        self._namespace_exists(obj)
        new = self._admit(obj)
        try:
            return self.store.create(new)
        except AlreadyExists:
            release_quietly(self.store, new)
            raise

    def update(self, obj: Resource, revision: int | None = None) -> Resource:
        """Replace the stored object (CAS on `revision`, default obj's resourceVersion;
        0 = whatever is stored). Raises Invalid, NotFound, Conflict."""
        live = self.store.get(obj.kind, obj.namespace, obj.name)
        rev = obj.resource_version if revision is None else revision
        if rev and rev != live.resource_version:
            raise Conflict(self._stale(obj))
        d = obj.to_dict()
        carry_allocated(d, live)
        return self._replace(live, from_dict(d))

    def update_status(self, obj: Resource, revision: int | None = None) -> Resource:
        """The status subresource: only `status` changes; the rest stays as stored."""
        live = self.store.get(obj.kind, obj.namespace, obj.name)
        rev = obj.resource_version if revision is None else revision
        if rev and rev != live.resource_version:
            raise Conflict(self._stale(obj))
        return self.store.update(live.with_status(obj.status), revision=live.resource_version)

    def mutate(self, kind: str, namespace: str, name: str,
               change: Callable[[Resource], Resource | None]) -> Resource | None:
        """Read, change, write (CAS), retried on Conflict: for controllers. `change`
        returns the new object, or None to write nothing. Raises NotFound, Invalid."""
        for _ in range(ATTEMPTS):
            live = self.store.get(kind, namespace, name)
            new = change(live)
            if new is None or new.raw == live.raw:
                return None
            try:
                return self._replace(live, new)
            except Conflict:
                continue
        raise GaveUp(f"{kind} {namespace}/{name}: gave up after {ATTEMPTS} conflicting writes by others; try again")

    def mutate_status(self, obj: Resource, status: Callable[[Resource], dict[str, Any]]) -> Resource | None:
        """Set the status computed from the latest stored object (CAS, retried); None
        when the object is gone or has been replaced (another uid)."""
        for _ in range(ATTEMPTS):
            try:
                live = self.store.get(obj.kind, obj.namespace, obj.name)
            except NotFound:
                return None
            if obj.uid and live.uid != obj.uid:
                return None
            want = status(live)
            if want == live.status:
                return live
            try:
                return self.store.update(live.with_status(want), revision=live.resource_version)
            except Conflict:
                continue
            except NotFound:
                return None
        return None

    def _replace(self, live: Resource, new: Resource) -> Resource:
        self._validate(new)
        check_immutable(live, new)
        admitted = self._admit(_keep_identity(new, live))
        return self.store.update(admitted, revision=live.resource_version)

    # ---- apply --------------------------------------------------------------------------
    def apply(self, obj: Resource) -> Outcome:
        """kubectl's client-side apply: create, or three-way merge onto the live object;
        "unchanged" when the merge changes nothing. Retried on conflicting writes."""
        self._validate(obj)
        for _ in range(ATTEMPTS):
            try:
                live = self.store.get(obj.kind, obj.namespace, obj.name)
            except NotFound:
                try:
                    return Outcome("created", None, self.create(from_dict(stamped_manifest(obj))))
                except AlreadyExists:
                    continue
            merged = merged_for_apply(live, obj)
            if merged == live.raw:
                return Outcome("unchanged", live, live)
            try:
                return Outcome("configured", live, self._replace(live, from_dict(merged)))
            except (Conflict, NotFound):
                continue
        raise GaveUp(f"gave up after {ATTEMPTS} conflicting writes by others; try again")

    def undo(self, outcome: Outcome) -> None:
        """Put the store back as it was before `outcome` (a later object of the same
        apply failed)."""
        after = outcome.after
        if outcome.action == "created":
            try:
                gone = self.store.delete(after.kind, after.namespace, after.name)
            except NotFound:
                return
            release_quietly(self.store, gone)
        elif outcome.action == "configured" and outcome.before is not None:
            for _ in range(ATTEMPTS):
                try:
                    cur = self.store.get(after.kind, after.namespace, after.name)
                    self.store.update(outcome.before, revision=cur.resource_version)
                    return
                except Conflict:
                    continue
                except NotFound:
                    return

    # ---- delete -------------------------------------------------------------------------
    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None,
               propagation: str = "Background") -> Resource:
        """Delete with cascade (see deleting.py). Raises NotFound, Conflict, Forbidden."""
        return deleting.delete_object(self.store, kind, namespace, name, revision, propagation)

    # ---- helpers ------------------------------------------------------------------------
    def _validate(self, obj: Resource) -> None:
        errs = validate_object(obj)
        if errs:
            raise Invalid(obj.kind, obj.name, errs)

    def _namespace_exists(self, obj: Resource) -> None:
        if is_namespaced(obj.kind) and obj.kind not in INTERNAL_KINDS:
            try:
                self.store.get("Namespace", "", obj.namespace)
            except NotFound:
                raise NotFound(f'namespaces "{obj.namespace}" not found') from None

    def _admit(self, obj: Resource) -> Resource:
        try:
            return admit(self.store, obj)
        except AdmissionError as e:
            raise Invalid.from_message(obj.kind, obj.name, str(e)) from None

    @staticmethod
    def _stale(obj: Resource) -> str:
        return (f'Operation cannot be fulfilled on {obj.kind.lower()} "{obj.name}": the object has '
                f"been modified; please apply your changes to the latest version and try again")


def _keep_identity(new: Resource, live: Resource) -> Resource:
    """An update keeps the stored uid and creationTimestamp (a user's manifest lacks them)."""
    d = new.to_dict()
    md = d.setdefault("metadata", {})
    for f in ("uid", "creationTimestamp"):
        if f in live.metadata:
            md[f] = copy.deepcopy(live.metadata[f])
    return from_dict(d)


def release_quietly(store: Datastore, obj: Resource) -> None:
    """Give back what admission took for `obj`, which was never stored (best effort)."""
    try:
        release(store, obj)
    except Exception:  # noqa: BLE001 - the write itself already failed
        pass
