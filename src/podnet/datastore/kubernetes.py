"""The Kubernetes datastore ("KDD", issue 15 §1): the Datastore interface on the Kubernetes API.

`kubernetes://?kubeconfig=PATH`, or `kubernetes://` with `$KUBECONFIG` (else
~/.kube/config), else the in-cluster service account. Each verb is one API request made
with the official `kubernetes` client's generic `ApiClient.param_serialize`/`call_api` (no typed models: an
object stays the dict it is, unknown fields and all; docs/design/datastore.md says why this
client):

| interface | API |
|---|---|
| get / list | GET the object / the collection; a list's `metadata.resourceVersion` is `ListResult.revision` |
| create | POST; 409 -> AlreadyExists |
| update (CAS) | PUT with `metadata.resourceVersion` = the revision (without it when 0: unconditional); 409 -> Conflict |
| delete (CAS) | DELETE with `preconditions.resourceVersion`; 409 -> Conflict |
| watch | `?watch=true&resourceVersion=R&allowWatchBookmarks=true`, one stream per kind; 410 Expired -> Compacted (the informer relists) |
| patch (beyond the interface) | PATCH, merge or strategic merge, of the object or its status: a writer's own fields only |
| revision | the resourceVersion of a one-item Namespace list |

Revisions: podnet's API server serves the store's global revision as every
resourceVersion, so the interface's integer revisions hold through it. A real
kube-apiserver's resourceVersions are opaque strings per object (today etcd's revisions,
which is why they parse as integers there too, but nothing promises it); see the design page.

A watch of several kinds (or of all, `kinds=None`) merges one stream per kind; the
streams are not ordered against each other, so the merge holds each event for
`MERGE_WINDOW` seconds and hands them out by revision: in order unless one stream lags
another by more than that (within one kind, order is the API's).
"""
from __future__ import annotations

import builtins
import heapq
import json
import logging
import os
import queue
import threading
import time
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

from podnet.api.meta import KINDS
from podnet.api.objects import Resource, from_dict
from podnet.api.selector import LabelSelector
from podnet.datastore.common import InvalidObject, encode, norm_namespace, object_key, selected
from podnet.datastore.decoding import split_key
from podnet.datastore.interface import (AlreadyExists, BadEntry, Compacted, Conflict,
                                        DatastoreError, Event, ListResult, NotFound, Unavailable)
from podnet.datastore.kube_kinds import BY_KIND, KubeKind

log = logging.getLogger("podnet.datastore.kubernetes")

MERGE_WINDOW = 0.05      # seconds an event of a many-kind watch waits for other kinds' older ones
READ_TIMEOUT = 30.0      # a watch stream silent this long (bookmarks come every 10 s) is dead
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = (CONNECT_TIMEOUT, 30.0)


def _client_config(url: str) -> Any:
    from kubernetes import client, config
    parts = urlsplit(url)
    if parts.scheme != "kubernetes":
        raise DatastoreError(f"not a kubernetes URL: {url!r}")
    path = (parse_qs(parts.query).get("kubeconfig") or [""])[0] or os.environ.get("KUBECONFIG", "")
    if not path and os.path.exists(os.path.expanduser("~/.kube/config")):
        path = os.path.expanduser("~/.kube/config")
    cfg = client.Configuration()
    try:
        if path:
            config.load_kube_config(config_file=path.split(os.pathsep)[0], client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
    except (config.ConfigException, OSError) as e:
        raise Unavailable(f"kubernetes datastore {url!r}: no usable kubeconfig "
                          f"({path or 'in-cluster service account'}): {e}") from e
    return cfg


class KubernetesDatastore:
    # The API server behind this store validates, admits (ClusterIPs, NodePorts, defaults)
    # and cascades deletes on its side, as kube-apiserver does: apiserver.write.Writer
    # passes writes through instead of admitting them a second time here (issue 15).
    serves_admission = True

    def __init__(self, url: str) -> None:
        from kubernetes import client
        self.url = url
        self._api = client.ApiClient(_client_config(url))
        self._reload_lock = threading.Lock()
        self._closed = False

    # ---- one request --------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
              stream: bool = False, timeout: Any = REQUEST_TIMEOUT,
              content_type: str = "application/json") -> Any:
        from urllib3.exceptions import HTTPError
        if self._closed:
            raise DatastoreError(f"datastore {self.url} is closed")
        try:
            resp = self._send(method, path, body, query, timeout, content_type)
            if resp.status == 401:   # the credentials expired or were rotated: read them again
                data = resp.read()
                if not self._reload():
                    raise _api_error(resp.status, data, method, path)
                resp = self._send(method, path, body, query, timeout, content_type)
            if not 200 <= resp.status <= 299:
                raise _api_error(resp.status, resp.read(), method, path)
            if stream:
                return resp.response   # urllib3's, not yet read
            return json.loads(resp.read())
        except (HTTPError, OSError) as e:
            raise Unavailable(f"{self.url}: {method} {path}: {e}") from e

    def _send(self, method: str, path: str, body: Any, query: list[tuple[str, str]] | None,
              timeout: Any, content_type: str) -> Any:
        req = self._api.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"])
        return self._api.call_api(*req, _request_timeout=timeout)

    def _reload(self) -> bool:
        """After a 401: load the kubeconfig (or the service account's token) again, as a
        long-lived client must when its token expires and the file is rewritten (the CNI
        daemon's kubeconfig, which the install step refreshes; a projected token). True when
        the credentials changed, so the request is worth one more try."""
        from kubernetes import client
        try:
            cfg = _client_config(self.url)
        except Unavailable as e:
            log.warning("%s: 401, and the credentials could not be read again: %s", self.url, e)
            return False
        old = self._api.configuration
        if (cfg.api_key, cfg.cert_file, cfg.key_file) == (old.api_key, old.cert_file, old.key_file):
            return False
        with self._reload_lock:   # requests under way keep the client they started with
            self._api = client.ApiClient(cfg)
        log.info("%s: 401: credentials read again", self.url)
        return True

    # ---- reads --------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Resource:
        kk = _kind(kind)
        return _from_api(self._call("GET", kk.path(norm_namespace(kind, namespace), name)), kk)

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ListResult:
        kk = _kind(kind)
        ns = None if namespace is None else norm_namespace(kind, namespace)
        body = self._call("GET", kk.path(ns))
        items = [_from_api(d, kk) for d in body.get("items") or []]
        items = [o for o in items if selected(o, selector)]
        items.sort(key=lambda o: (o.namespace, o.name))
        return ListResult(items, int(body["metadata"]["resourceVersion"]))

    def revision(self) -> int:
        body = self._call("GET", BY_KIND["Namespace"].path(), query=[("limit", "1")])
        return int(body["metadata"]["resourceVersion"])

    def check(self, kind: str | None = None) -> builtins.list[BadEntry]:  # list: the method
        """Nothing to find: the API server never serves an entry that does not decode (it
        skips it, as this interface's readers do). `podnet store check` on the store
        behind the server finds them."""
        return []

    # ---- writes -------------------------------------------------------------------
    def create(self, obj: Resource) -> Resource:
        kind, ns, name = object_key(obj)
        kk = _kind(kind)
        body = _to_api(obj, kk, ns)
        body["metadata"].pop("resourceVersion", None)
        try:
            out = self._call("POST", kk.path(ns), body)
        except Conflict:
            raise AlreadyExists(f"{kind} {ns + '/' if ns else ''}{name} already exists") from None
        return self._with_status(kk, ns, name, body, out)

    def update(self, obj: Resource, revision: int | None = None) -> Resource:
        kind, ns, name = object_key(obj)
        kk = _kind(kind)
        want = obj.resource_version if revision is None else revision
        body = _to_api(obj, kk, ns)
        if want:
            body["metadata"]["resourceVersion"] = str(want)
        else:
            body["metadata"].pop("resourceVersion", None)
        out = self._call("PUT", kk.path(ns, name), body)
        return self._with_status(kk, ns, name, body, out)

    def _with_status(self, kk: KubeKind, ns: str, name: str, sent: dict[str, Any],
                     got: dict[str, Any]) -> Resource:
        """A kind with a status subresource keeps its status on a write of the object (as
        kube-apiserver's do): when the status written differs from the one stored, it is
        written through /status, compare-and-swap on the revision just written. So a
        datastore write stores the whole object, as the other backends do, at the cost
        of a second revision."""
        if kk.status and "status" in sent and sent["status"] != got.get("status"):
            body = dict(got, status=sent["status"])
            got = self._call("PUT", kk.path(ns, name) + "/status", body)
        return _from_api(got, kk)

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
              patch_type: str = "merge", subresource: str = "",
              field_manager: str = "") -> Resource:
        """Beyond the interface: PATCH one object (or its `status` subresource), `patch_type`
        "merge" (RFC 7386) or "strategic" (by the Kubernetes types' merge keys), so a writer
        changes only its own fields of an object others write too (the agent's part of a
        Node whose status the kubelet owns). A patch naming metadata.resourceVersion is a
        compare-and-swap (409 -> Conflict)."""
        kk = _kind(kind)
        ns = norm_namespace(kind, namespace)
        types = {"merge": "application/merge-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}
        if patch_type not in types:
            raise ValueError(f"patch_type: one of {', '.join(types)}")
        path = kk.path(ns, name) + (f"/{subresource}" if subresource else "")
        query = [("fieldManager", field_manager)] if field_manager else []
        return _from_api(self._call("PATCH", path, patch, query=query,
                                    content_type=types[patch_type]), kk)

    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None) -> Resource:
        return self.delete_object(kind, namespace, name, revision, propagation="Orphan", grace_period=0)

    def delete_object(self, kind: str, namespace: str, name: str, revision: int | None = None,
                      propagation: str = "Background", grace_period: int | None = None) -> Resource:
        """Beyond the interface: DELETE as a user's client sends it, the server doing the
        rest (dependents by `propagation`, a Pod with a grace period only marked
        terminating and returned so; `grace_period` None = the object's own)."""
        kk = _kind(kind)
        ns = norm_namespace(kind, namespace)
        opts: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if grace_period is not None:
            opts["gracePeriodSeconds"] = grace_period
        if revision:
            opts["preconditions"] = {"resourceVersion": str(revision)}
        out = self._call("DELETE", kk.path(ns, name), opts)
        if out.get("kind") == "Status":  # an older server's answer: no object to give back
            raise DatastoreError(f"{self.url}: DELETE {kk.path(ns, name)} gave no object")
        return _from_api(out, kk)

    def remove(self, key: str, revision: int | None = None) -> None:
        try:
            kind, ns, name = split_key(key)
        except ValueError as e:
            raise NotFound(str(e)) from None
        self.delete(kind, ns, name, revision)

    def compact(self, revision: int) -> None:
        raise DatastoreError("the Kubernetes API has no compaction verb: the API server compacts "
                             "its own store (podnet's: `podnet store compact` on that store)")

    # ---- watch --------------------------------------------------------------------
    def watch(self, from_revision: int, kinds: tuple[str, ...] | None = None,
              stop: Any = None) -> Iterator[Event]:
        wanted = [_kind(k) for k in (kinds or tuple(KINDS))]
        out: queue.Queue[Any] = queue.Queue()
        done = threading.Event()
        streams: list[_Stream] = []
        for kk in wanted:
            s = _Stream(self, kk, from_revision, out, done, optional=kinds is None)
            streams.append(s)
            s.start()
        held: list[tuple[int, float, int, Event]] = []   # (revision, arrived, seq, event)
        seq = 0
        window = MERGE_WINDOW if len(wanted) > 1 else 0.0
        try:
            while not (stop is not None and stop.is_set()) and not self._closed:
                wait = 0.05
                if held:
                    wait = max(0.0, min(wait, held[0][1] + window - time.monotonic()))
                try:
                    item = out.get(timeout=wait)
                except queue.Empty:
                    item = None
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    seq += 1
                    heapq.heappush(held, (item.revision, time.monotonic(), seq, item))
                now = time.monotonic()
                while held and held[0][1] + window <= now:
                    yield heapq.heappop(held)[3]
                    if stop is not None and stop.is_set():
                        return
        finally:
            done.set()
            for s in streams:
                s.shutdown()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._api.rest_client.pool_manager.clear()
        except Exception:  # noqa: BLE001 - closing must not fail
            pass


class _Stream(threading.Thread):
    """One kind's watch stream: events into `out`, an error into `out` and the end."""

    def __init__(self, ds: KubernetesDatastore, kk: KubeKind, rev: int, out: "queue.Queue[Any]",
                 done: threading.Event, optional: bool) -> None:
        super().__init__(daemon=True, name=f"kdd-watch-{kk.kind}")
        self.ds, self.kk, self.rev, self.out, self.done, self.optional = ds, kk, rev, out, done, optional
        self._resp: Any = None
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        with self._lock:
            resp, self._resp = self._resp, None
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - best effort: the thread ends on its next read
                pass

    def run(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines
        from urllib3.exceptions import HTTPError
        requested = self.rev
        try:
            resp = self.ds._call("GET", self.kk.path(), stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                 query=[("watch", "true"), ("resourceVersion", str(self.rev)),
                                        ("allowWatchBookmarks", "true")])
            with self._lock:
                self._resp = resp
            if self.done.is_set():
                self.shutdown()
                return
            for line in iter_resp_lines(resp):
                if self.done.is_set():
                    return
                ev = json.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise Compacted(requested, 0)
                    raise Unavailable(f"{self.ds.url}: watch {self.kk.kind}: {obj.get('message')}")
                rev = int((obj.get("metadata") or {}).get("resourceVersion") or 0)
                self.rev = max(self.rev, rev)
                if ev.get("type") == "BOOKMARK":
                    continue
                self.out.put(Event(ev["type"], rev, _from_api(obj, self.kk)))
            if not self.done.is_set():
                raise Unavailable(f"{self.ds.url}: watch {self.kk.kind} ended at revision {self.rev}")
        except Compacted as e:
            self.out.put(Compacted(requested, e.oldest))
        except NotFound as e:
            if self.optional:
                log.info("%s: %s is not served: not watched (%s)", self.ds.url, self.kk.kind, e)
            else:
                self.out.put(e)
        except DatastoreError as e:
            if not self.done.is_set():
                self.out.put(e)
        except (HTTPError, OSError, ValueError) as e:
            if not self.done.is_set():
                self.out.put(Unavailable(f"{self.ds.url}: watch {self.kk.kind}: {e}"))


def _kind(kind: str) -> KubeKind:
    kk = BY_KIND.get(kind)
    if kk is None:
        raise InvalidObject(f"kind {kind!r} has no place in the Kubernetes API "
                            f"(known: {', '.join(sorted(BY_KIND))})")
    return kk


def _to_api(obj: Resource, kk: KubeKind, ns: str) -> dict[str, Any]:
    d = json.loads(encode(obj.raw))   # a deep copy, and InvalidObject when not JSON
    d["apiVersion"] = kk.api_version
    md = d.setdefault("metadata", {})
    if kk.namespaced:
        md["namespace"] = ns
    else:
        md.pop("namespace", None)
    return d


def _from_api(d: dict[str, Any], kk: KubeKind) -> Resource:
    """The object as the store keeps it: the store's apiVersion (a Node is podnet.io/v1)."""
    d["apiVersion"] = KINDS[kk.kind][0]
    d["kind"] = kk.kind
    return from_dict(d)


def _api_error(status: int, data: bytes, method: str, path: str) -> DatastoreError:
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        body = {}
    msg = f"{method} {path}: {status} {body.get('message') or data[:200]!r}"
    if status == 404:
        return NotFound(msg)
    if status == 409:
        return AlreadyExists(msg) if body.get("reason") == "AlreadyExists" else Conflict(msg)
    if status == 410:
        return Compacted(0, 0)
    if status in (400, 422):
        return InvalidObject(msg)
    if status >= 500 or status == 429:
        return Unavailable(msg)
    return DatastoreError(msg)
