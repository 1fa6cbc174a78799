"""`?dryRun=All`: every check of a write, and no write (kubectl diff, --dry-run=server).

A Writer that validates, checks the namespace, existence, compare-and-swap and immutable
fields exactly as the real one, and answers with the object that would be stored,
without touching the store: no admission either, since admission allocates (ClusterIPs,
NodePorts) and a dry run must not hold anything. So a dry-run Service shows no new
clusterIP (kube-apiserver's dry-run allocator would show one it then forgets).
"""
from __future__ import annotations

import uuid

from podnet.api.objects import Resource
from podnet.apiserver.write import Writer, _first_generation, _keep_identity
from podnet.datastore.common import now_rfc3339
from podnet.datastore.interface import AlreadyExists, Conflict, NotFound

MODES = ("All",)


class DryRunWriter(Writer):
    def create(self, obj: Resource) -> Resource:
        self._validate(obj)
        self._namespace_exists(obj)
        try:
            self.store.get(obj.kind, obj.namespace, obj.name)
        except NotFound:
            pass
        else:
            raise AlreadyExists(f"{obj.kind} {obj.namespace}/{obj.name} already exists")
        return _first_generation(obj).with_metadata(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())

    def _replace(self, live: Resource, new: Resource) -> Resource:
        from podnet.apiserver.apply import check_immutable
        self._validate(new)
        check_immutable(live, new)
        return _keep_identity(new, live).with_metadata(resourceVersion=str(live.resource_version))

    def update_status(self, obj: Resource, revision: int | None = None) -> Resource:
        live = self.store.get(obj.kind, obj.namespace, obj.name)
        rev = obj.resource_version if revision is None else revision
        if rev and rev != live.resource_version:
            raise Conflict(self._stale(obj))
        return live.with_status(obj.status)

    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None,
               propagation: str = "Background", grace_period: int | None = None) -> Resource:
        from podnet.apiserver.deleting import PROPAGATION_POLICIES, PROTECTED_NAMESPACES
        from podnet.apiserver.errors import BadRequest, Forbidden
        if propagation not in PROPAGATION_POLICIES:
            raise BadRequest(f"propagationPolicy {propagation!r}: use one of {', '.join(PROPAGATION_POLICIES)}")
        if kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        live = self.store.get(kind, namespace, name)
        if revision and revision != live.resource_version:
            raise Conflict(f"{kind} {namespace}/{name}: the object has been modified")
        return live
