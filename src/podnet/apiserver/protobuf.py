"""Request bodies in Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf). Pure.

kubectl's typed generators (`create namespace|service|deployment`, `expose`) send their
object as protobuf, and kube-apiserver has no way to tell them to fall back to JSON. The
envelope is `k8s\\0` + runtime.Unknown {typeMeta {apiVersion, kind}, raw}; raw is the
object's message, decoded here with the field tables of proto_fields.json (generated
from k8s.io/api's and k8s.io/apimachinery's generated.proto by tools/gen_proto_fields.py)
into the JSON form the API serves. As the Go types' JSON does with `omitempty`, zero
values are left out (empty strings, zero numbers, false, empty lists and objects), except
`replicas`, which is a pointer there. Kinds without a table get 415.
"""
from __future__ import annotations

import base64
import datetime
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from podnet.apiserver.status import ApiStatus

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
DATA = Path(__file__).with_name("proto_fields.json")
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_KEEP_ZERO = frozenset({"replicas"})


class ProtoError(ValueError):
    pass


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ProtoError("truncated varint")
        byte = b[i]
        i += 1
        out |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return out, i
        shift += 7


def _fields(b: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) in order; value: int (varint, fixed) or bytes."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        v: int | bytes
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ProtoError("truncated field")
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        elif wt == 5:
            v, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        else:
            raise ProtoError(f"wire type {wt} is not supported")
        out.append((num, wt, v))
    return out


def _signed(v: int, bits: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else (v - (1 << bits) if bits == 32 and v >= 1 << 31 else v)


def _scalar(typ: str, wt: int, v: Any) -> Any:
    if typ == "string":
        if wt != 2:
            raise ProtoError("a string must be length-delimited")
        return v.decode("utf-8")
    if typ == "bytes":
        return base64.b64encode(v).decode()
    if typ == "bool":
        return bool(v)
    if typ in ("int32", "int64"):
        return _signed(v, 32 if typ == "int32" else 64)
    if typ in ("uint32", "uint64"):
        return v
    raise ProtoError(f"type {typ} is not supported")


def _special(typ: str, b: bytes) -> tuple[bool, Any]:
    """Types whose JSON form is not an object."""
    if typ in (META + "Time", META + "MicroTime"):
        f = {n: v for n, _, v in _fields(b)}
        if not f.get(1):
            return True, None
        t = datetime.datetime.fromtimestamp(_signed(f[1], 64), datetime.timezone.utc)
        return True, t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if typ == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        f = {n: v for n, _, v in _fields(b)}
        return True, (f.get(3, b"").decode() if f.get(1) == 1 else _signed(f.get(2, 0), 32))
    if typ == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        f = {n: v for n, _, v in _fields(b)}
        return True, f.get(1, b"").decode() or None
    if typ == "k8s.io.apimachinery.pkg.runtime.RawExtension":
        f = {n: v for n, _, v in _fields(b)}
        return True, json.loads(f[1]) if f.get(1) else None
    return False, None


def _empty(v: Any, name: str) -> bool:
    return v is None or (name not in _KEEP_ZERO and v in ("", 0, False, [], {}))


def message(typ: str, b: bytes) -> Any:
    special, value = _special(typ, b)
    if special:
        return value
    table = _tables()["messages"].get(typ)
    if table is None:
        raise ProtoError(f"{typ} is not a type podnet decodes")
    out: dict[str, Any] = {}
    for num, wt, v in _fields(b):
        spec = table.get(str(num))
        if spec is None:
            raise ProtoError(f"{typ}: unknown field {num}")
        name, ftype, repeated, map_value = spec
        if ftype == "map":
            entry = {n: x for n, _, x in _fields(v)}
            key = entry.get(1, b"").decode()
            raw = entry.get(2, b"")
            out.setdefault(name, {})[key] = raw.decode() if map_value == "string" else message(map_value, raw)
            continue
        if ftype in _tables()["scalars"]:
            if repeated and wt == 2 and ftype not in ("string", "bytes"):
                vals, i = [], 0
                while i < len(v):
                    x, i = _varint(v, i)
                    vals.append(_scalar(ftype, 0, x))
                out.setdefault(name, []).extend(vals)
                continue
            val = _scalar(ftype, wt, v)
        else:
            if wt != 2:
                raise ProtoError(f"{typ}.{name}: a message must be length-delimited")
            val = message(ftype, v)
        if repeated:
            out.setdefault(name, []).append(val)
        else:
            out[name] = val
    return {k: v for k, v in out.items() if not _empty(v, k)}


def decode(data: bytes) -> dict[str, Any]:
    """The object a protobuf request body carries, as JSON. Raises ApiStatus 415/400."""
    if not data.startswith(MAGIC):
        raise ApiStatus(400, "the protobuf body lacks the k8s envelope")
    try:
        env = {n: v for n, _, v in _fields(data[len(MAGIC):])}
        tm = {n: v for n, _, v in _fields(env.get(1, b""))}
        api_version, kind = tm.get(1, b"").decode(), tm.get(2, b"").decode()
        root = _tables()["roots"].get(kind)
        if root is None:
            raise ApiStatus(415, f"protobuf bodies of kind {kind or '?'} are not served; send JSON "
                                 f"(kubectl apply -f) instead", "UnsupportedMediaType")
        obj = message(root, env.get(2, b""))
    except (ProtoError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ApiStatus(400, f"the protobuf body could not be decoded: {e}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
