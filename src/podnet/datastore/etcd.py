"""The etcd datastore: objects as JSON under `<prefix>/<kind>/<namespace>/<name>`.

Revisions are etcd's own: an object's resourceVersion is its key's mod_revision (not
stored in the value; stamped on read), so CAS is one transaction comparing mod_revision.
Requests go through etcd3gw (etcd's grpc-gateway JSON API); the watch stream is read
directly from etcd3gw's HTTP session, because etcd3gw's watch hides compaction
(`canceled` + `compact_revision`), which podnet must surface as `Compacted`.

URLs: `etcd://host:port[/prefix][?netns=NAME]` (with netns, sockets are created inside
that network namespace: see transport.py), `etcd+unix:///dir/etcd.sock:0[/prefix]`.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import requests
from etcd3gw import exceptions as etcd_exc
from etcd3gw.client import Etcd3Client
from etcd3gw.utils import _decode, _encode

from podnet.api.objects import Resource, from_dict
from podnet.api.selector import LabelSelector
from podnet.datastore.common import (encode, norm_namespace, object_key, prepare_create,
                                     prepare_update, selected, stamp)
from podnet.datastore.etcd_watch import watch_stream
from podnet.datastore.interface import (AlreadyExists, Conflict, DatastoreError, Event,
                                        ListResult, NotFound, Unavailable)
from podnet.datastore.transport import netns_session, plain_session, unix_session

DEFAULT_PREFIX = "/podnet"
REQUEST_TIMEOUT = 10.0


def parse_etcd_url(url: str) -> dict[str, Any]:
    """-> {host, port, prefix, netns, unix}; raises DatastoreError naming the URL."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "etcd+unix":
        path = parts.netloc + parts.path
        # The socket file ends in ":PORT" (etcd's naming); anything after is the prefix.
        head, sep, tail = path.partition(":")
        port, slash, rest = tail.partition("/")
        if not sep or not port.isdigit():
            raise DatastoreError(f"etcd+unix URL {url!r}: expected etcd+unix:///dir/NAME:PORT[/prefix]")
        return {"host": "localhost", "port": 80, "unix": f"{head}:{port}",
                "prefix": "/" + rest.strip("/") if rest.strip("/") else query.get("prefix", DEFAULT_PREFIX),
                "netns": None}
    if parts.scheme != "etcd":
        raise DatastoreError(f"not an etcd URL: {url!r}")
    try:
        host, port = parts.hostname, parts.port or 2379
    except ValueError as e:
        raise DatastoreError(f"etcd URL {url!r}: {e}") from None
    if not host:
        raise DatastoreError(f"etcd URL {url!r} has no host (use etcd://host:port[/prefix])")
    prefix = "/" + parts.path.strip("/") if parts.path.strip("/") else DEFAULT_PREFIX
    return {"host": host, "port": port, "prefix": prefix, "netns": query.get("netns"),
            "unix": None}


def _rev(d: dict[str, Any], field: str = "revision") -> int:
    return int(d.get(field, 0) or 0)


class EtcdDatastore:
    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url = url
        cfg = parse_etcd_url(url)
        self.prefix: str = cfg["prefix"]
        self.netns: str | None = cfg["netns"]
        self.unix: str | None = cfg["unix"]
        self._session_factory: Callable[[], requests.Session] = (
            (lambda: unix_session(cfg["unix"])) if cfg["unix"] else
            (lambda: netns_session(cfg["netns"])) if cfg["netns"] else plain_session)
        self.client = Etcd3Client(host=cfg["host"], port=cfg["port"], timeout=timeout,
                                  api_path="/v3/", session=self._session_factory())

    # ---- keys -----------------------------------------------------------------------
    def _key(self, kind: str, ns: str, name: str) -> str:
        return f"{self.prefix}/{kind}/{ns}/{name}"

    def _split(self, key: str) -> tuple[str, str, str]:
        kind, ns, name = key[len(self.prefix) + 1:].split("/", 2)
        return kind, ns, name

    @property
    def _meta_key(self) -> str:
        # Outside the `<prefix>/` range, so lists and watches never see it.
        return f"{self.prefix}!compact"

    # ---- transport ------------------------------------------------------------------
    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(self.client.post(self.client.get_url(path), json=payload))
        except (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError,
                etcd_exc.InternalServerError) as e:
            # 5xx from the gateway: no leader yet, server restarting, request timed out.
            raise Unavailable(f"etcd {self.url}: {e}") from e
        except etcd_exc.Etcd3Exception as e:
            raise DatastoreError(f"etcd {self.url} {path}: {e.detail_text or e}") from e
        except requests.RequestException as e:
            raise Unavailable(f"etcd {self.url}: {e}") from e

    def _txn(self, compare: list[Any], success: list[Any], failure: list[Any]) -> dict[str, Any]:
        return self._post("/kv/txn", {"compare": compare, "success": success, "failure": failure})

    def _decode_kv(self, kv: dict[str, Any], revision: int | None = None) -> Resource:
        d = json.loads(_decode(kv["value"]) if kv.get("value") else b"{}")
        return from_dict(stamp(d, revision if revision is not None else _rev(kv, "mod_revision")))

    def _range(self, key: str, range_end: str | None = None) -> dict[str, Any]:
        payload = {"key": _encode(key)}
        if range_end is not None:
            payload["range_end"] = _encode(range_end)
        return self._post("/kv/range", payload)

    def _stored(self, key: str) -> dict[str, Any] | None:
        kvs = self._range(key).get("kvs") or []
        return kvs[0] if kvs else None

    # ---- reads ----------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Resource:
        ns = norm_namespace(kind, namespace)
        kv = self._stored(self._key(kind, ns, name))
        if kv is None:
            raise NotFound(f"{kind} {ns + '/' if ns else ''}{name} not found")
        return self._decode_kv(kv)

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ListResult:
        start = (f"{self.prefix}/{kind}/" if namespace is None
                 else f"{self.prefix}/{kind}/{norm_namespace(kind, namespace)}/")
        # '/' + 1 == '0': the end of the range of keys that start with `start`.
        resp = self._range(start, start[:-1] + "0")
        items = [self._decode_kv(kv) for kv in resp.get("kvs") or []]
        items = [o for o in items if selected(o, selector)]
        items.sort(key=lambda o: (o.namespace, o.name))
        return ListResult(items, _rev(resp["header"]))

    def revision(self) -> int:
        return _rev(self._post("/kv/range", {"key": _encode(self._meta_key),
                                             "count_only": True})["header"])

    # ---- writes ---------------------------------------------------------------------
    def create(self, obj: Resource) -> Resource:
        kind, ns, name = object_key(obj)
        key = self._key(kind, ns, name)
        d = prepare_create(obj)
        d.get("metadata", {}).pop("resourceVersion", None)
        value = encode(d)
        resp = self._txn([{"target": "CREATE", "key": _encode(key), "create_revision": 0}],
                         [{"request_put": {"key": _encode(key), "value": _encode(value)}}], [])
        if not resp.get("succeeded"):
            raise AlreadyExists(f"{kind} {ns + '/' if ns else ''}{name} already exists")
        return from_dict(stamp(d, _rev(resp["header"])))

    def update(self, obj: Resource, revision: int | None = None) -> Resource:
        kind, ns, name = object_key(obj)
        key = self._key(kind, ns, name)
        want = obj.resource_version if revision is None else revision
        what = f"{kind} {ns + '/' if ns else ''}{name}"
        md = obj.metadata
        if want and "uid" in md and "creationTimestamp" in md:
            return self._update_cas(obj, key, want, what)
        while True:
            kv = self._stored(key)
            if kv is None:
                raise NotFound(f"{what} not found")
            stored_rev = _rev(kv, "mod_revision")
            if want and want != stored_rev:
                raise Conflict(f"{what}: revision {want} is stale (stored: {stored_rev})")
            d = prepare_update(obj, json.loads(_decode(kv["value"])))
            d["metadata"].pop("resourceVersion", None)
            resp = self._txn(
                [{"target": "MOD", "key": _encode(key), "mod_revision": stored_rev}],
                [{"request_put": {"key": _encode(key), "value": _encode(encode(d))}}], [])
            if resp.get("succeeded"):
                return from_dict(stamp(d, _rev(resp["header"])))
            if want:
                # Someone wrote between our read and our txn: the caller's revision is stale.
                raise Conflict(f"{what}: revision {want} is stale (changed concurrently)")
            # Unconditional update lost a race: read again and retry.

    def _update_cas(self, obj: Resource, key: str, want: int, what: str) -> Resource:
        """The common CAS case (the caller read the object): one round trip."""
        d = prepare_update(obj, {})
        d["metadata"].pop("resourceVersion", None)
        resp = self._txn([{"target": "MOD", "key": _encode(key), "mod_revision": want}],
                         [{"request_put": {"key": _encode(key), "value": _encode(encode(d))}}],
                         [{"request_range": {"key": _encode(key), "keys_only": True}}])
        if resp.get("succeeded"):
            return from_dict(stamp(d, _rev(resp["header"])))
        kvs = resp["responses"][0]["response_range"].get("kvs") or []
        if not kvs:
            raise NotFound(f"{what} not found")
        raise Conflict(f"{what}: revision {want} is stale (stored: {_rev(kvs[0], 'mod_revision')})")

    def delete(self, kind: str, namespace: str, name: str, revision: int | None = None) -> Resource:
        ns = norm_namespace(kind, namespace)
        key = self._key(kind, ns, name)
        what = f"{kind} {ns + '/' if ns else ''}{name}"
        delete_op = {"request_delete_range": {"key": _encode(key), "prev_kv": True}}
        if revision:
            resp = self._txn([{"target": "MOD", "key": _encode(key), "mod_revision": revision}],
                             [delete_op], [{"request_range": {"key": _encode(key)}}])
            if not resp.get("succeeded"):
                kvs = (resp["responses"][0]["response_range"].get("kvs") or [])
                if not kvs:
                    raise NotFound(f"{what} not found")
                raise Conflict(f"{what}: revision {revision} is stale "
                               f"(stored: {_rev(kvs[0], 'mod_revision')})")
            prev = resp["responses"][0]["response_delete_range"].get("prev_kvs") or []
        else:
            resp = self._post("/kv/deleterange", {"key": _encode(key), "prev_kv": True})
            prev = resp.get("prev_kvs") or []
        if not prev:
            raise NotFound(f"{what} not found")
        return self._decode_kv(prev[0], _rev(resp["header"]))

    # ---- compaction and watch -------------------------------------------------------
    def compact(self, revision: int) -> None:
        """Forget events at or below `revision`. etcd's compaction at R keeps R's event,
        so we compact at revision+1; the meta write makes sure revision+1 exists.
        Note that compaction in etcd is cluster-wide, not per prefix."""
        resp = self._post("/kv/put", {"key": _encode(self._meta_key),
                                      "value": _encode(str(revision))})
        target = min(revision + 1, _rev(resp["header"]))
        try:
            self._post("/kv/compaction", {"revision": target, "physical": False})
        except DatastoreError as e:
            if "compacted" not in str(e):  # already compacted at or past target: fine
                raise

    def watch(self, from_revision: int, kinds: tuple[str, ...] | None = None,
              stop: Any = None) -> Iterator[Event]:
        wanted = set(kinds) if kinds else None
        start = f"{self.prefix}/"
        if kinds and len(kinds) == 1:
            start = f"{self.prefix}/{kinds[0]}/"
        session = self._session_factory()
        try:
            for ev in watch_stream(session, self.client.get_url("/watch"), start,
                                   start[:-1] + "0", from_revision, stop, self.url):
                kind = self._split(_decode(ev["kv"]["key"]).decode())[0]
                if wanted is not None and kind not in wanted:
                    continue
                yield self._event(ev)
        finally:
            session.close()

    def _event(self, ev: dict[str, Any]) -> Event:
        kv = ev["kv"]
        rev = _rev(kv, "mod_revision")
        if ev.get("type") == "DELETE":
            prev = ev.get("prev_kv")
            if prev is not None:
                obj = self._decode_kv(prev, rev)
            else:  # the previous state was compacted away: all we know is the key
                kind, ns, name = self._split(_decode(kv["key"]).decode())
                md: dict[str, Any] = {"name": name, "resourceVersion": str(rev)}
                if ns:
                    md["namespace"] = ns
                obj = from_dict({"kind": kind, "metadata": md})
            return Event("DELETED", rev, obj)
        typ = "ADDED" if _rev(kv, "create_revision") == rev else "MODIFIED"
        return Event(typ, rev, self._decode_kv(kv))

    def close(self) -> None:
        self.client.session.close()
