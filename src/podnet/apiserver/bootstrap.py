"""What every cluster has before anyone writes: the `default` and `kube-system` Namespaces."""
from __future__ import annotations

from podnet.api.objects import Namespace
from podnet.apiserver.admission import NAMESPACE_NAME_LABEL
from podnet.apiserver.write import Writer
from podnet.datastore.interface import AlreadyExists, Conflict, NotFound

DEFAULT_NAMESPACES = ("default", "kube-system")


def ensure_default_namespaces(writer: Writer) -> None:
    """`default` and `kube-system` exist, and every Namespace carries the label
    `kubernetes.io/metadata.name` (policies select namespaces by it; Namespaces written by
    other tools may lack it). Writes only what is missing."""
    items = writer.store.list("Namespace").items
    for ns in items:
        if ns.labels.get(NAMESPACE_NAME_LABEL) != ns.name:
            try:
                writer.update(ns, revision=ns.resource_version)  # admission adds the label
            except (Conflict, NotFound):
                pass  # changed meanwhile; the next command looks again
    existing = {o.name for o in items}
    for name in DEFAULT_NAMESPACES:
        if name in existing:
            continue
        try:
            writer.create(Namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        except AlreadyExists:
            pass  # another command created it first
