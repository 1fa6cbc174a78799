"""`Writer`: the one way objects get into the store (create, update, status, apply, delete).

Each write validates the object (api.validate, the messages `podnet apply` prints),
checks that its namespace exists, runs admission (ClusterIPs, NodePorts, Namespace
defaults), and writes with compare-and-swap on the revision it read. What admission took
for a write that then failed is given back. Refusals: apiserver.errors (Invalid,
Forbidden, BadRequest) and the datastore's NotFound / AlreadyExists / Conflict.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable, cast

from podnet.api.crds import check_object
from podnet.api.objects import INTERNAL_KINDS, Resource, from_dict, is_namespaced
from podnet.api.validate import validate_object
from podnet.apiserver import deleting
from podnet.apiserver.admission import AdmissionError, admit, release
from podnet.apiserver.apply import Outcome, carry_allocated, check_immutable, merged_for_apply, stamped_manifest
from podnet.apiserver.errors import Forbidden, GaveUp, Invalid
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore, NotFound
from podnet.datastore.util import RetriesExhausted, update_with_retry

if TYPE_CHECKING:
    from podnet.datastore.kubernetes import KubernetesDatastore

ATTEMPTS = 20


class Writer:
    """The write path over one datastore. Cheap to make; holds no state but the store."""

    def __init__(self, store: Datastore):
        self.store = store
        # A store that is itself an API server (the Kubernetes datastore) admits, allocates
        # and cascades on its side; doing it here as well would allocate twice, and against
        # a real kube-apiserver into podnet's own allocation kinds (issue 15).
        self.server = cast("KubernetesDatastore", store) if getattr(store, "serves_admission", False) else None

    # ---- create / update ----------------------------------------------------------------
    def create(self, obj: Resource) -> Resource:
        """Raises Invalid, NotFound (its namespace), AlreadyExists."""
        if obj.kind in INTERNAL_KINDS:
            return self.store.create(self._custom(obj))
        self._validate(obj)
        if self.server is not None:
            return self.server.create(obj)
        self._namespace_exists(obj)
        new = self._admit(_first_generation(obj))
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
        """Read, change, write (CAS), retried on Conflict (datastore.util.update_with_retry):
        for controllers. `change` returns the new object, or None to write nothing (then
        None is returned). A change of `status` alone is written as the status subresource;
        anything else is validated and admitted as `update`. Raises NotFound, Invalid,
        GaveUp."""
        unchanged: list[Resource] = []

        def changed(live: Resource) -> Resource | None:
            new = change(live)
            if new is None or new.raw == live.raw:
                unchanged.append(live)
                return None
            return new
        try:
            out = update_with_retry(self.store, kind, namespace, name, changed, ATTEMPTS,
                                    write=self._write_changed)
        except RetriesExhausted:
            raise GaveUp(f"{kind} {namespace}/{name}: gave up after {ATTEMPTS} conflicting writes "
                         f"by others; try again") from None
        return None if unchanged and out is unchanged[-1] else out

    def _write_changed(self, live: Resource, new: Resource) -> Resource:
        if _without_status(new) == _without_status(live):
            return self.store.update(live.with_status(new.status), revision=live.resource_version)
        return self._replace(live, new)

    def _replace(self, live: Resource, new: Resource) -> Resource:
        if new.kind in INTERNAL_KINDS:
            return self.store.update(self._custom(_keep_identity(new, live)), revision=live.resource_version)
        self._validate(new)
        if self.server is not None:
            return self.server.update(_keep_identity(new, live), revision=live.resource_version)
        check_immutable(live, new)
        admitted = self._admit(_keep_identity(new, live))
        return self.store.update(admitted, revision=live.resource_version)

    # ---- apply --------------------------------------------------------------------------
    def apply(self, obj: Resource) -> Outcome:
        """kubectl's client-side apply: create, or three-way merge onto the live object;
        "unchanged" when the merge changes nothing. Retried on conflicting writes."""
        self._validate(obj)
        for _ in range(ATTEMPTS):  # a create racing a delete by others
            try:
                return self._apply_to_live(obj)
            except NotFound:
                try:
                    return Outcome("created", None, self.create(from_dict(stamped_manifest(obj))))
                except AlreadyExists:
                    continue
        raise GaveUp(f"gave up after {ATTEMPTS} conflicting writes by others; try again")

    def _apply_to_live(self, obj: Resource) -> Outcome:
        """The three-way merge onto the stored object, CAS retried; raises NotFound."""
        seen: list[Resource] = []

        def merge(live: Resource) -> Resource | None:
            seen.append(live)
            merged = merged_for_apply(live, obj)
            return None if merged == live.raw else from_dict(merged)
        try:
            after = update_with_retry(self.store, obj.kind, obj.namespace, obj.name, merge, ATTEMPTS,
                                      write=self._replace)
        except RetriesExhausted:
            raise GaveUp(f"gave up after {ATTEMPTS} conflicting writes by others; try again") from None
        live = seen[-1]
        return Outcome("unchanged", live, live) if after is live else Outcome("configured", live, after)

    def undo(self, outcome: Outcome) -> None:
        """Put the store back as it was before `outcome` (a later object of the same
        apply failed)."""
        after = outcome.after
        if outcome.action == "created" and self.server is not None:
            try:
                self.server.delete_object(after.kind, after.namespace, after.name, grace_period=0)
            except NotFound:
                pass
        elif outcome.action == "created":
            try:
                gone = self.store.delete(after.kind, after.namespace, after.name)
            except NotFound:
                return
            release_quietly(self.store, gone)
        elif outcome.action == "configured" and outcome.before is not None:
            before = outcome.before
            try:
                update_with_retry(self.store, after.kind, after.namespace, after.name,
                                  lambda cur: before, ATTEMPTS)
            except NotFound:
                return

    # ---- delete -------------------------------------------------------------------------
    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None,
               propagation: str = "Background", grace_period: int | None = None) -> Resource:
        """Delete with cascade (see deleting.py); a scheduled Pod is only marked terminating
        unless `grace_period` is 0. Raises NotFound, Conflict, Forbidden, BadRequest."""
        if self.server is not None:
            return self.server.delete_object(kind, namespace, name, revision, propagation, grace_period)
        return deleting.delete_object(self.store, kind, namespace, name, revision, propagation,
                                      grace_period)

    # ---- helpers ------------------------------------------------------------------------
    @staticmethod
    def _custom(obj: Resource) -> Resource:
        """podnet's IPAM state, written through the API (the Kubernetes datastore, issue 15
        §1) as a real cluster serves its CRDs (deploy/crds.yaml): checked against the CRD's
        schema, no admission. `apply` still refuses these kinds (they are not a user's)."""
        errs = check_object(obj.raw)
        if errs:
            raise Invalid(obj.kind, obj.name, errs)
        return obj

    def _validate(self, obj: Resource) -> None:
        errs = validate_object(obj)
        if errs:
            raise Invalid(obj.kind, obj.name, errs)

    def _namespace_exists(self, obj: Resource) -> None:
        if is_namespaced(obj.kind) and obj.kind not in INTERNAL_KINDS:
            try:
                ns = self.store.get("Namespace", "", obj.namespace)
            except NotFound:
                raise NotFound(f'namespaces "{obj.namespace}" not found') from None
            if ns.deletion_timestamp:
                raise Forbidden(f'{obj.kind.lower()}s "{obj.name}" is forbidden: unable to create new '
                                f"content in namespace {obj.namespace} because it is being terminated")

    def _admit(self, obj: Resource) -> Resource:
        try:
            return admit(self.store, obj)
        except AdmissionError as e:
            raise Invalid.from_message(obj.kind, obj.name, str(e)) from None

    @staticmethod
    def _stale(obj: Resource) -> str:
        return (f'Operation cannot be fulfilled on {obj.kind.lower()} "{obj.name}": the object has '
                f"been modified; please apply your changes to the latest version and try again")


def _without_status(obj: Resource) -> dict[str, Any]:
    return {k: v for k, v in obj.raw.items() if k != "status"}


# Kinds whose metadata.generation counts changes of their spec (kube-apiserver's
# strategies; the Deployment controller reports it back as status.observedGeneration,
# which `kubectl rollout status` compares).
GENERATION_KINDS = ("Deployment",)


def _first_generation(obj: Resource) -> Resource:
    if obj.kind not in GENERATION_KINDS:
        return obj
    return obj.with_metadata(generation=1)


def _keep_identity(new: Resource, live: Resource) -> Resource:
    """An update keeps the stored uid and creationTimestamp (a user's manifest lacks them),
    and a new spec bumps the generation; a terminating object stays terminating (only a
    delete sets or shortens that)."""
    d = new.to_dict()
    md = d.setdefault("metadata", {})
    for f in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        md.pop(f, None)
    for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if f in live.metadata:
            md[f] = copy.deepcopy(live.metadata[f])
    if live.kind in GENERATION_KINDS:
        gen = int(live.metadata.get("generation") or 1)
        md["generation"] = gen + 1 if d.get("spec") != live.spec else gen
    return from_dict(d)


def release_quietly(store: Datastore, obj: Resource) -> None:
    """Give back what admission took for `obj`, which was never stored (best effort)."""
    try:
        release(store, obj)
    except Exception:  # noqa: BLE001 - the write itself already failed
        pass
