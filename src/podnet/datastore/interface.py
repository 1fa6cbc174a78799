"""The datastore contract every backend (SQLite, etcd) fulfils. Imports only podnet.api.

Objects are stored whole (the manifest dict) under (kind, namespace, name). Every write
bumps one store-wide revision; an object's `metadata.resourceVersion` is the revision of
its last write (etcd's mod_revision), and that is what compare-and-swap compares.
Watch delivers events in revision order, each exactly once, and can resume from any
revision not yet compacted; a compacted start raises `Compacted` (relist, then watch
from the list's revision).

A stored value that does not decode into an object of its key (a disk fault, a buggy
writer) is treated as absent by every reader: list skips it (and names it in
`ListResult.skipped`), watch reports it as DELETED, get raises `Undecodable`; each skip is
logged with key and revision and counted (decoding.py). `check` finds such entries and
`remove` deletes one by key, as `etcdctl get`/`del` would.
"""
from __future__ import annotations

from dataclasses import dataclass
import builtins
from typing import Any, Iterator, Protocol

from podnet.api.objects import Resource
from podnet.api.selector import LabelSelector


class DatastoreError(Exception):
    """Base of every datastore error."""


class NotFound(DatastoreError):
    pass


class AlreadyExists(DatastoreError):
    pass


class Conflict(DatastoreError):
    """Compare-and-swap failed: the object changed since the revision given."""


class Compacted(DatastoreError):
    """The watch start revision is older than the oldest retained event: relist."""

    def __init__(self, requested: int, oldest: int):
        super().__init__(f"revision {requested} is compacted (oldest kept: {oldest}); relist")
        self.requested = requested
        self.oldest = oldest


class Unavailable(DatastoreError):
    """The backend cannot be reached."""


@dataclass(frozen=True)
class BadEntry:
    """A stored entry no reader can use."""
    key: str        # `Kind/namespace/name` (namespace empty when cluster-scoped): what `remove` takes
    revision: int   # the entry's last write
    reason: str     # why it does not decode


class Undecodable(DatastoreError):
    """`get` found the key, but its value is not an object (see BadEntry)."""

    def __init__(self, entry: BadEntry):
        super().__init__(f"{entry.key} (revision {entry.revision}) cannot be decoded: "
                         f"{entry.reason}; find such entries with `podnet store check`, remove "
                         f"one with `podnet store rm {entry.key}`")
        self.entry = entry


@dataclass(frozen=True)
class Event:
    type: str  # "ADDED" | "MODIFIED" | "DELETED"
    revision: int
    object: Resource  # for DELETED: the last state, with resourceVersion = delete revision


@dataclass(frozen=True)
class ListResult:
    items: list[Resource]
    revision: int  # the store revision the list is consistent at
    skipped: tuple[BadEntry, ...] = ()  # entries of the range that did not decode


class Datastore(Protocol):
    url: str

    def get(self, kind: str, namespace: str, name: str) -> Resource:
        """Raises NotFound."""

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ListResult:
        """namespace None: all namespaces. Items sorted by (namespace, name)."""

    def create(self, obj: Resource) -> Resource:
        """Raises AlreadyExists. Sets metadata.resourceVersion (and uid, creationTimestamp)."""

    def update(self, obj: Resource, revision: int | None = None) -> Resource:
        """CAS: when `revision` (default: obj.resource_version; 0 = unconditional) differs
        from the stored one, raise Conflict. Raises NotFound when absent."""

    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None) -> Resource:
        """Returns the deleted object. CAS when revision is given. Raises NotFound."""

    def watch(self, from_revision: int, kinds: tuple[str, ...] | None = None,
              stop: Any = None) -> Iterator[Event]:
        """Events with revision > from_revision, in order, until `stop` (a threading.Event)
        is set. Raises Compacted when from_revision is too old."""

    def revision(self) -> int:
        """The current store revision."""

    def check(self, kind: str | None = None) -> builtins.list[BadEntry]:  # list: the method
        """Every entry (of `kind`, or of all kinds) that does not decode, in key order."""

    def remove(self, key: str, revision: int | None = None) -> None:
        """Delete the entry at `key` (`Kind/namespace/name`) whatever its value, with a
        DELETED event; CAS when revision is given. Raises NotFound, Conflict."""

    def compact(self, revision: int) -> None:
        """Forget events at or below `revision` (watchers from there get Compacted)."""

    def close(self) -> None:
        ...


def open_datastore(url: str) -> Datastore:
    """`sqlite:///abs/path.db`, `sqlite://relative.db`, `etcd://host:port[/prefix]`,
    `etcd+unix:///path/to/socket[/prefix]`, `kubernetes://[?kubeconfig=PATH]` or just `kubernetes`
    (the Kubernetes API: $KUBECONFIG, ~/.kube/config or the in-cluster service account)."""
    if url.startswith("sqlite:"):
        from podnet.datastore.sqlite import SqliteDatastore
        return SqliteDatastore(url)
    if url.startswith("etcd"):
        from podnet.datastore.etcd import EtcdDatastore
        return EtcdDatastore(url)
    if url == "kubernetes" or url.startswith("kubernetes:"):  # bare: as PODNET_DATASTORE=kubernetes
        from podnet.datastore.kubernetes import KubernetesDatastore
        return KubernetesDatastore(url if url != "kubernetes" else "kubernetes://")
    raise DatastoreError(f"unknown datastore URL {url!r}: use sqlite:///path.db, "
                         f"etcd://host:port[/prefix] or kubernetes://[?kubeconfig=PATH]")
