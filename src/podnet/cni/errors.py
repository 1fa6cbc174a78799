"""CNI error codes (SPEC.md §5) and the one exception every CNI path raises. No imports.

`CniError.to_dict` is the spec's error object; the skeleton prints it on stdout and
exits non-zero. Codes 0-99 are the spec's; we use only the well-known ones, and a few plugin-specific
>= 100.
"""
from __future__ import annotations

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
NOT_AVAILABLE_LIMITED = 51
INTERNAL = 999  # libcni's "internal": a bug, never expected
# plugin-specific (>= 100): the node's CNI daemon serves root only (client.py, daemon.py)
NOT_PERMITTED = 102

SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str = "1.1.0") -> dict:
        d = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            d["details"] = self.details
        return d

    @classmethod
    def from_dict(cls, d: dict, fallback: str = "") -> "CniError":
        try:
            return cls(int(d.get("code", INTERNAL)), str(d.get("msg") or fallback), str(d.get("details") or ""))
        except (TypeError, ValueError, AttributeError):
            return cls(INTERNAL, fallback or repr(d))
