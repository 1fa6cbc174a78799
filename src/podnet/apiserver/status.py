"""metav1.Status: every refusal the API gives, as kube-apiserver words it. Pure.

`ApiStatus` is the exception the HTTP layer turns into a Status body; `from_exception`
maps the write path's and the datastore's errors to one (reason, code, details.causes),
so a 422 carries the same `field: message` lines `podnet apply` prints.
"""
from __future__ import annotations

from typing import Any

from podnet.apiserver.errors import BadRequest, Forbidden, GaveUp, Invalid, WriteError
from podnet.datastore.interface import (AlreadyExists, Compacted, Conflict, NotFound,
                                        Unavailable, Undecodable)

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
            413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
            500: "InternalError", 503: "ServiceUnavailable"}


class ApiStatus(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": self.message,
                               "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def success(kind: str, name: str, uid: str = "", group: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


def not_found(plural: str, name: str, group: str = "") -> ApiStatus:
    what = f"{plural}.{group}" if group else plural
    return ApiStatus(404, f'{what} "{name}" not found',
                     details={"name": name, "kind": plural, **({"group": group} if group else {})})


def invalid(kind: str, name: str, group: str, causes: list[tuple[str, str]]) -> ApiStatus:
    """422 as kube-apiserver: `Kind "name" is invalid: field: why, field2: why2`."""
    text = "; ".join(f"{f}: {m}" if f else m for f, m in causes)
    return ApiStatus(422, f'{kind} "{name}" is invalid: {text}', details={
        "name": name, "kind": kind, **({"group": group} if group else {}),
        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})


def from_exception(e: BaseException, kind: str, plural: str, name: str, group: str = "") -> ApiStatus:
    """The Status for an error of the write path or the store, about one object."""
    if isinstance(e, ApiStatus):
        return e
    if isinstance(e, Invalid):
        return invalid(kind, name, group, [(c.path, c.message) for c in e.causes])
    if isinstance(e, NotFound):
        msg = str(e)
        if msg.startswith("namespaces "):
            return ApiStatus(404, msg, details={"name": msg.split('"')[1] if '"' in msg else "",
                                                "kind": "namespaces"})
        return not_found(plural, name, group)
    if isinstance(e, AlreadyExists):
        what = f"{plural}.{group}" if group else plural
        return ApiStatus(409, f'{what} "{name}" already exists', "AlreadyExists",
                         {"name": name, "kind": plural, **({"group": group} if group else {})})
    if isinstance(e, (Conflict, GaveUp)):
        what = f"{plural}.{group}" if group else plural
        return ApiStatus(409, f'Operation cannot be fulfilled on {what} "{name}": the object has '
                              f"been modified; please apply your changes to the latest version "
                              f"and try again", "Conflict",
                         {"name": name, "kind": plural, **({"group": group} if group else {})})
    if isinstance(e, Compacted):
        return ApiStatus(410, f"too old resource version: {e.requested} ({e.oldest})", "Expired")
    if isinstance(e, (Forbidden, BadRequest)):
        return ApiStatus(e.code, str(e))
    if isinstance(e, WriteError):
        return ApiStatus(e.code, str(e), e.reason)
    if isinstance(e, Undecodable):
        return ApiStatus(500, str(e))
    if isinstance(e, Unavailable):
        return ApiStatus(503, f"the datastore is unavailable: {e}")
    return ApiStatus(500, f"internal error: {type(e).__name__}: {e}")
