"""The etcd datastore: objects as JSON under `<prefix>/<kind>/<namespace>/<name>`.

Revisions are etcd's own: an object's resourceVersion is its key's mod_revision (not
stored in the value; stamped on read), so CAS is one transaction comparing mod_revision.
Requests go through etcd3gw (etcd's grpc-gateway JSON API); the watch stream is read
directly from etcd3gw's HTTP session, because etcd3gw's watch hides compaction
(`canceled` + `compact_revision`), which podnet must surface as `Compacted`.

URLs: `etcd://host:port[/prefix][?netns=NAME]` (with netns, sockets are created inside
that network namespace: see transport.py), `etcd+unix:///dir/etcd.sock:0[/prefix]`.
With TLS (issue 12 §1): `etcds://` and `etcds+unix://`, which need
`ca=FILE&cert=FILE&key=FILE` in the query (the CA etcd's certificate is checked against,
the client certificate etcd's --client-cert-auth asks for, and its key). The files are
checked when the store is opened, so a missing or bad one is an error naming it, not a
TLS failure on the first request.
"""
from __future__ import annotations

import builtins
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
from podnet.datastore.decoding import decode_object, placeholder, report
from podnet.datastore.etcd_watch import watch_stream
from podnet.datastore.interface import (AlreadyExists, BadEntry, Conflict, DatastoreError, Event,
                                        ListResult, NotFound, Undecodable, Unavailable)
from podnet.datastore.transport import Tls, netns_session, plain_session, unix_session

DEFAULT_PREFIX = "/podnet"
REQUEST_TIMEOUT = 10.0


TLS_SCHEMES = {"etcds": "etcd", "etcds+unix": "etcd+unix"}


def _tls(url: str, scheme: str, query: dict[str, str]) -> Tls | None:
    given = [k for k in ("ca", "cert", "key") if query.get(k)]
    if scheme not in TLS_SCHEMES:
        if given:
            raise DatastoreError(f"etcd URL {url!r}: {', '.join(given)} given for a plain-text "
                                 f"URL; use {scheme.replace('etcd', 'etcds', 1)}:// for TLS")
        return None
    missing = [k for k in ("ca", "cert", "key") if k not in given]
    if missing:
        raise DatastoreError(f"etcd URL {url!r}: TLS needs ca=, cert= and key= files "
                             f"(missing: {', '.join(missing)})")
    return Tls(query["ca"], query["cert"], query["key"])


def check_tls_files(tls: Tls) -> None:
    """Load the CA and the client certificate and key as the TLS handshake will, so a
    missing, unreadable or mismatched file is named now; raises DatastoreError."""
    import ssl
    for what, path in (("CA", tls.ca), ("client certificate", tls.cert), ("client key", tls.key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise DatastoreError(f"etcd TLS: cannot read the {what} {path}: {e.strerror or e}") from None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        ctx.load_verify_locations(cafile=tls.ca)
    except (ssl.SSLError, ValueError) as e:
        raise DatastoreError(f"etcd TLS: the CA {tls.ca} is not a PEM certificate: {e}") from None
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, ValueError) as e:
        raise DatastoreError(f"etcd TLS: the client certificate {tls.cert} and key {tls.key} "
                             f"do not load as a pair: {e}") from None


def parse_etcd_url(url: str) -> dict[str, Any]:
    """-> {host, port, prefix, netns, unix, tls}; raises DatastoreError naming the URL."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    cfg = _parse_plain(url, parts, query, TLS_SCHEMES.get(parts.scheme, parts.scheme))
    cfg["tls"] = _tls(url, parts.scheme, query)
    return cfg


def _parse_plain(url: str, parts: Any, query: dict[str, str], scheme: str) -> dict[str, Any]:
    if scheme == "etcd+unix":
        path = parts.netloc + parts.path
        # The socket file ends in ":PORT" (etcd's naming); anything after is the prefix.
        head, sep, tail = path.partition(":")
        port, slash, rest = tail.partition("/")
        if not sep or not port.isdigit():
            raise DatastoreError(f"etcd+unix URL {url!r}: expected etcd+unix:///dir/NAME:PORT[/prefix]")
        return {"host": "localhost", "port": 80, "unix": f"{head}:{port}",
                "prefix": "/" + rest.strip("/") if rest.strip("/") else query.get("prefix", DEFAULT_PREFIX),
                "netns": None}
    if scheme != "etcd":
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


def _loads_or_empty(value: str | None) -> dict[str, Any]:
    """The stored object, or {} when it does not decode (an update overwrites it whole)."""
    try:
        d = json.loads(_decode(value)) if value else {}
    except (ValueError, TypeError, RecursionError):
        return {}
    return d if isinstance(d, dict) else {}


class EtcdDatastore:
    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url = url
        cfg = parse_etcd_url(url)
        self.prefix: str = cfg["prefix"]
        self.netns: str | None = cfg["netns"]
        self.unix: str | None = cfg["unix"]
        tls: Tls | None = cfg["tls"]
        if tls is not None:
            check_tls_files(tls)
        self._session_factory: Callable[[], requests.Session] = (
            (lambda: unix_session(cfg["unix"], tls)) if cfg["unix"] else
            (lambda: netns_session(cfg["netns"], tls)) if cfg["netns"] else
            (lambda: plain_session(tls)))
        self.client = Etcd3Client(host=cfg["host"], port=cfg["port"], timeout=timeout,
                                  protocol="https" if tls else "http",
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
        """The object of one key-value; Undecodable when the value (or the key) is not one."""
        rev = revision if revision is not None else _rev(kv, "mod_revision")
        key = self._relative(kv)
        try:
            kind, ns, name = self._split(self.prefix + "/" + key)
        except ValueError:
            raise Undecodable(BadEntry(key, _rev(kv, "mod_revision"),
                                       "the key is not <prefix>/Kind/namespace/name")) from None
        raw = _decode(kv["value"]) if kv.get("value") else None
        return from_dict(stamp(decode_object(kind, ns, name, raw, _rev(kv, "mod_revision")), rev))

    def _relative(self, kv: dict[str, Any]) -> str:
        """The key without `<prefix>/`, as `check` names it and `remove` takes it."""
        return _decode(kv["key"]).decode("utf-8", "replace")[len(self.prefix) + 1:]

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
        items: list[Resource] = []
        skipped: list[BadEntry] = []
        for kv in resp.get("kvs") or []:
            try:
                items.append(self._decode_kv(kv))
            except Undecodable as e:
                report(e.entry, f"{self.url}: list {kind}")
                skipped.append(e.entry)
        items = [o for o in items if selected(o, selector)]
        items.sort(key=lambda o: (o.namespace, o.name))
        return ListResult(items, _rev(resp["header"]), tuple(skipped))

    def check(self, kind: str | None = None) -> builtins.list[BadEntry]:  # list: the method
        start = f"{self.prefix}/{kind}/" if kind else f"{self.prefix}/"
        bad: list[BadEntry] = []
        for kv in self._range(start, start[:-1] + "0").get("kvs") or []:
            try:
                self._decode_kv(kv)
            except Undecodable as e:
                bad.append(e.entry)
        return bad

    def remove(self, key: str, revision: int | None = None) -> None:
        """Any key under the prefix, even one that is not Kind/namespace/name."""
        if not key or key.startswith("/"):
            raise NotFound(f"{key!r} is not a store key: expected Kind/namespace/name")
        full = _encode(f"{self.prefix}/{key}")
        if revision:
            resp = self._txn([{"target": "MOD", "key": full, "mod_revision": revision}],
                             [{"request_delete_range": {"key": full}}],
                             [{"request_range": {"key": full, "keys_only": True}}])
            if resp.get("succeeded"):
                return
            kvs = resp["responses"][0]["response_range"].get("kvs") or []
            if kvs:
                raise Conflict(f"{key}: revision {revision} is stale "
                               f"(stored: {_rev(kvs[0], 'mod_revision')})")
        elif int(self._post("/kv/deleterange", {"key": full}).get("deleted") or 0):
            return
        raise NotFound(f"{key} not found")

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
            d = prepare_update(obj, _loads_or_empty(kv.get("value")))
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
        try:
            return self._decode_kv(prev[0], _rev(resp["header"]))
        except Undecodable:  # deleting a bad entry is how it gets repaired
            return from_dict(placeholder(kind, ns, name, _rev(resp["header"])))

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
                kind = self._relative(ev["kv"]).split("/", 1)[0]
                if wanted is not None and kind not in wanted:
                    continue
                event = self._event(ev)
                if event is not None:
                    yield event
        finally:
            session.close()

    def _event(self, ev: dict[str, Any]) -> Event | None:
        """The event, or None for a key that names no object (reported, skipped). A value
        that does not decode says the object is gone, as a list would skip it."""
        kv = ev["kv"]
        rev = _rev(kv, "mod_revision")
        try:
            kind, ns, name = self._split(_decode(kv["key"]).decode("utf-8", "replace"))
        except ValueError:
            report(BadEntry(self._relative(kv), rev, "the key is not <prefix>/Kind/namespace/name"),
                   f"{self.url}: watch")
            return None
        gone = from_dict(placeholder(kind, ns, name, rev))
        if ev.get("type") == "DELETE":
            prev = ev.get("prev_kv")  # None: the previous state was compacted away
            try:
                return Event("DELETED", rev, self._decode_kv(prev, rev) if prev else gone)
            except Undecodable:
                return Event("DELETED", rev, gone)
        try:
            obj = self._decode_kv(kv)
        except Undecodable as e:
            report(e.entry, f"{self.url}: watch {kind}")
            return Event("DELETED", rev, gone)
        return Event("ADDED" if _rev(kv, "create_revision") == rev else "MODIFIED", rev, obj)

    def close(self) -> None:
        self.client.session.close()
