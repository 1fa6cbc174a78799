"""The write path's refusals, one class per Kubernetes Status reason. Pure.

NotFound, AlreadyExists and Conflict come from the datastore as they are (a CAS that
lost is a Conflict whoever reports it); the classes here add what the store cannot
know: an object that is invalid (422, with one cause per field), a write that is
forbidden (403), a request the server does not understand (400).
"""
from __future__ import annotations

from typing import Sequence

from podnet.api.errors import FieldError


class WriteError(Exception):
    """Base of the write path's own refusals; `code` and `reason` as metav1.Status."""
    code = 500
    reason = "InternalError"


class Invalid(WriteError):
    """The object was refused; `causes` name each field. str(e) is the causes joined by
    '; ', each `path: message`, the same lines `podnet apply` prints."""
    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, causes: Sequence[FieldError]):
        self.kind, self.name, self.causes = kind, name, list(causes)
        super().__init__("; ".join(str(c) for c in self.causes))

    @classmethod
    def from_message(cls, kind: str, name: str, message: str) -> "Invalid":
        """A one-line refusal `spec.x: why` (admission's form) split into field and why."""
        path, sep, why = message.partition(": ")
        if sep and path and " " not in path:
            return cls(kind, name, [FieldError(path, why)])
        return cls(kind, name, [FieldError("", message)])


class Forbidden(WriteError):
    code = 403
    reason = "Forbidden"


class BadRequest(WriteError):
    code = 400
    reason = "BadRequest"


class GaveUp(WriteError):
    """Too many conflicting writes by others in a row (the caller may retry)."""
    code = 409
    reason = "Conflict"
