"""The REST verbs over the write path: get, list, create, update, status, scale, delete.

Synchronous (the HTTP layer runs these in worker threads). Each takes the resource the
URL names and returns the JSON body to answer with, or raises ApiStatus. Every write goes
through write.Writer (validation, admission, compare-and-swap); nothing here touches the
store's write methods itself.
"""
from __future__ import annotations

import bisect
import builtins
import copy
import secrets
from typing import Any, Mapping

from podnet.api.objects import Resource, from_dict
from podnet.api.selector import LabelSelector
from podnet.apiserver import endpoints, query
from podnet.apiserver.bodies import for_store
from podnet.apiserver.managed import record_update
from podnet.apiserver.resources import ApiResource, served
from podnet.apiserver.status import ApiStatus, from_exception, not_found
from podnet.apiserver.watch_cache import Caches, key_of
from podnet.apiserver.write import Writer
from podnet.datastore.interface import Conflict, DatastoreError

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's SimpleNameGenerator alphabet


def _fail(e: BaseException, res: ApiResource, name: str) -> ApiStatus:
    return from_exception(e, res.kind, res.plural, name, res.group)


class Crud:
    def __init__(self, writer: Writer, caches: Caches | None = None):
        self.writer = writer
        self.store = writer.store
        self.caches = caches   # lists served from the shared watch cache when allowed

    # ---- reads --------------------------------------------------------------------------
    def get(self, res: ApiResource, ns: str, name: str) -> dict[str, Any]:
        if res.derived:
            for e in self._endpoints(ns or None):
                if e["metadata"]["name"] == name:
                    return e
            raise not_found(res.plural, name, res.group)
        try:
            return served(self.store.get(res.kind, ns, name).raw, res)
        except (DatastoreError, ValueError) as e:
            raise _fail(e, res, name) from None

    def list(self, res: ApiResource, ns: str, params: Mapping[str, str]) -> dict[str, Any]:
        sel = query.label_selector(params.get("labelSelector"))
        terms = query.field_selector(params.get("fieldSelector"), res.kind)
        limit = query.limit_of(params.get("limit"))
        after = None
        if params.get("continue"):
            _, after = query.decode_continue(params["continue"])
        if res.derived:
            rev = self.store.revision()
            raw = [e for e in self._endpoints(ns or None) if sel is None or sel.matches(
                (e["metadata"].get("labels") or {}))]
        else:
            cached = self._from_cache(res, ns, sel, params)
            if cached is None:
                try:
                    got = self.store.list(res.kind, ns or None, sel)
                except DatastoreError as e:
                    raise _fail(e, res, "") from None
                items_at = got.items, got.revision
            else:
                items_at = cached
            rev = items_at[1]
            query.check_version(params, rev)
            objs = items_at[0]   # sorted by (namespace, name), as continue keys are
            if after is not None:
                objs, after = objs[bisect.bisect_right(objs, after, key=key_of):], None
            if not terms and limit and len(objs) > limit:
                # a page of a long list: only its own objects are copied for serving
                return self._answer(res, [served(o.raw, res) for o in objs[:limit]], rev,
                                    query.encode_continue(rev, key_of(objs[limit - 1])),
                                    len(objs) - limit)
            raw = [served(o.raw, res) for o in objs]
        query.check_version(params, rev)
        raw = [o for o in raw if query.fields_match(terms, o)]
        items, cont, remaining = query.page(raw, limit, after, rev)
        return self._answer(res, items, rev, cont, remaining)

    @staticmethod
    def _answer(res: ApiResource, items: builtins.list[dict[str, Any]], rev: int, cont: str,
                remaining: int | None) -> dict[str, Any]:
        md: dict[str, Any] = {"resourceVersion": str(rev)}
        if cont:
            md["continue"] = cont
            md["remainingItemCount"] = remaining
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": md,
                "items": items}

    def _from_cache(self, res: ApiResource, ns: str, sel: LabelSelector | None,
                    params: Mapping[str, str]) -> tuple[builtins.list[Resource], int] | None:
        """A list answered from the shared watch cache when its resourceVersion semantics
        allow it, as kube-apiserver does; None: list the store. resourceVersion "0" is
        "any": the cache as it is. A revision N (NotOlderThan, the default match): the
        cache once it is at N or later. Unset is a consistent read: the cache only when
        it is at the store's current revision or later (kube-apiserver 1.31+ checks the
        same through etcd's progress notifications; here the cache's revision is that of
        the last event of its kind, so a write of any other kind since sends the list to
        the store). A continue token: the cache at the first page's revision or later.
        Exact, and a malformed version, go to the store (which answers or refuses)."""
        if self.caches is None:
            return None
        rv, match = params.get("resourceVersion", ""), params.get("resourceVersionMatch", "")
        if match not in ("", "NotOlderThan"):
            return None
        at_least: int | None
        if params.get("continue"):
            at_least = query.decode_continue(params["continue"])[0]
        elif rv == "0":
            at_least = None
        elif rv == "":
            if match:
                return None
            try:
                at_least = self.store.revision()
            except DatastoreError:
                return None
        else:
            try:
                at_least = int(rv)
            except ValueError:
                return None
        return self.caches.get(res.kind).snapshot(ns or None, sel, at_least)

    def _endpoints(self, ns: str | None) -> builtins.list[dict[str, Any]]:  # list: the method
        return endpoints.derive(self.store.list("EndpointSlice", ns).items)

    # ---- writes -------------------------------------------------------------------------
    def create(self, res: ApiResource, ns: str, body: dict[str, Any], manager: str = "") -> dict[str, Any]:
        self._writable(res)
        obj = for_store(body, res, ns)   # its shape checked first: a 400, never a crash
        if manager:
            record_update(None, obj, manager, res.api_version, res.kind)
        md = obj["metadata"]
        if not md.get("name") and md.get("generateName"):
            md["name"] = str(md["generateName"]) + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
        for f in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            md.pop(f, None)
        name = str(md.get("name") or "")
        try:
            return served(self.writer.create(from_dict(obj)).raw, res)
        except Exception as e:
            raise _fail(e, res, name) from None

    def update(self, res: ApiResource, ns: str, name: str, body: dict[str, Any],
               manager: str = "") -> dict[str, Any]:
        self._writable(res)
        checked = for_store(body, res, ns, name)
        if manager:
            record_update(self._live(res, ns, name), checked, manager, res.api_version, res.kind)
        obj = from_dict(checked)
        try:
            return served(self.writer.update(obj).raw, res)
        except Exception as e:
            raise _fail(e, res, name) from None

    def update_status(self, res: ApiResource, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Only status changes (managedFields stay as they were: status is nobody's to apply)."""
        self._writable(res)
        obj = from_dict(for_store(body, res, ns, name))
        try:
            return served(self.writer.update_status(obj).raw, res)
        except Exception as e:
            raise _fail(e, res, name) from None

    def _live(self, res: ApiResource, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(res, ns, name)
        except ApiStatus:
            return None

    # ---- scale --------------------------------------------------------------------------
    def get_scale(self, res: ApiResource, ns: str, name: str) -> dict[str, Any]:
        return scale_of(self.get(res, ns, name))

    def update_scale(self, res: ApiResource, ns: str, name: str, body: dict[str, Any],
                     manager: str = "") -> dict[str, Any]:
        spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiStatus(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid '
                                 f"value: {replicas!r}: must be greater than or equal to 0")
        live = self.get(res, ns, name)
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if rv and rv != live["metadata"].get("resourceVersion"):
            raise _fail(Conflict("stale resourceVersion"), res, name)
        d = copy.deepcopy(live)
        d.setdefault("spec", {})["replicas"] = replicas
        return scale_of(self.update(res, ns, name, d, manager))

    # ---- delete -------------------------------------------------------------------------
    def delete(self, res: ApiResource, ns: str, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        self._writable(res)
        pre = options.get("preconditions") or {}
        grace = _grace(options)
        rev = None
        if pre.get("resourceVersion"):
            try:
                rev = int(pre["resourceVersion"])
            except (TypeError, ValueError):
                raise ApiStatus(400, "preconditions.resourceVersion is not a resource version") from None
        try:
            if pre.get("uid"):
                live = self.store.get(res.kind, ns, name)
                if live.uid != pre["uid"]:
                    raise ApiStatus(409, f'Precondition failed: UID in precondition: {pre["uid"]}, '
                                         f"UID in object meta: {live.uid}", "Conflict")
            gone = self.writer.delete(res.kind, ns, name, revision=rev,
                                      propagation=str(options.get("propagationPolicy") or "Background"),
                                      grace_period=grace)
        except Exception as e:
            raise _fail(e, res, name) from None
        return served(gone.raw, res)

    def delete_collection(self, res: ApiResource, ns: str, params: Mapping[str, str],
                          options: Mapping[str, Any]) -> dict[str, Any]:
        listed = self.list(res, ns, {k: v for k, v in params.items() if k != "limit"})
        gone = []
        for o in listed["items"]:
            md = o["metadata"]
            try:
                gone.append(self.delete(res, str(md.get("namespace") or ""), md["name"], options))
            except ApiStatus as e:
                if e.code != 404:
                    raise
        listed["items"] = gone
        return listed

    @staticmethod
    def _writable(res: ApiResource) -> None:
        if res.derived or "create" not in res.verbs:
            raise ApiStatus(405, f"{res.plural} are read-only here ({'derived from EndpointSlices' if res.derived else 'written by podnet itself'})",
                            "MethodNotAllowed")


def _grace(options: Mapping[str, Any]) -> int | None:
    """DeleteOptions.gracePeriodSeconds (body or query); None = the object's own."""
    g = options.get("gracePeriodSeconds")
    if g is None or g == "":
        return None
    try:
        return int(g)
    except (TypeError, ValueError):
        raise ApiStatus(400, f"gracePeriodSeconds {g!r} is not a number of seconds") from None


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """autoscaling/v1 Scale of a Deployment."""
    md = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                            "creationTimestamp") if k in md},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

