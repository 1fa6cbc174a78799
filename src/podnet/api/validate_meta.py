"""Checks of `metadata` beyond names and labels, as apimachinery's ValidateObjectMeta. Pure.

The object: at most 1.5 MiB as JSON (see jsontree). Annotations: keys are qualified names (case does not matter), and keys plus values
total at most 256 KiB (TotalAnnotationSizeLimitB). Finalizers are qualified names;
ownerReferences name apiVersion, kind, name and uid, and at most one is the
controller; generation is not negative.
"""
from __future__ import annotations

from typing import Any

from podnet.api.errors import FieldError
from podnet.api.jsontree import MAX_OBJECT_BYTES, TooBig, TreeError, measure
from podnet.api.fields import (Errs, at, check_int, check_list, check_map, check_str,
                               qualified_name_error, show, type_name)

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024  # bytes of keys and values (UTF-8), all together
# apply's copy of the manifest, which counts towards the limit (as kubectl's does)
LAST_APPLIED = "podnet.io/last-applied"


def object_size_error(raw: Any) -> FieldError | None:
    """The whole object: at most 1.5 MiB as JSON, not nested too deep, JSON values only."""
    try:
        measure(raw, MAX_OBJECT_BYTES)
    except TooBig as e:
        where = f" (it passes that at {e.path})" if e.path else ""
        return FieldError("", f"the object is more than {MAX_OBJECT_BYTES} bytes as JSON, the most "
                              f"etcd and so Kubernetes stores (1.5 MiB){where}")
    except TreeError as e:
        return FieldError(e.path, e.message)
    return None


def annotations_size(annotations: Any) -> int:
    """Bytes of every key and value, as Kubernetes counts them (Go string lengths)."""
    if not isinstance(annotations, dict):
        return 0
    return sum(len(str(k).encode("utf-8", "surrogatepass")) + len(str(v).encode("utf-8", "surrogatepass"))
               for k, v in annotations.items())


def annotations_size_error(annotations: Any) -> FieldError | None:
    size = annotations_size(annotations)
    if size <= TOTAL_ANNOTATION_SIZE_LIMIT:
        return None
    why = f"Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes (has {size})"
    if LAST_APPLIED in annotations:
        why += f", counting {LAST_APPLIED}: apply's copy of the manifest"
    return FieldError("metadata.annotations", why)


def check_annotations(v: Any, errs: Errs) -> None:
    path = "metadata.annotations"
    m = check_map(v, path, errs)
    for k, val in m.items():
        if not isinstance(k, str):
            errs.append(FieldError(path, f"key {show(k)} must be a string"))
            continue
        kerr = qualified_name_error(k.lower())
        if kerr:
            errs.append(FieldError(path, f"key {show(_short(k))} {kerr}"))
        if not isinstance(val, str):
            errs.append(FieldError(at(path, k), f"must be a string, not {type_name(val)}; quote it"))
    err = annotations_size_error(m)
    if err:
        errs.append(err)


def _short(s: str) -> str:
    return s if len(s) <= 80 else s[:60] + f"... ({len(s)} characters)"


def check_object_meta(md: dict[str, Any], errs: Errs) -> None:
    """What ValidateObjectMetaAccessor checks besides name, namespace and labels."""
    check_annotations(md.get("annotations"), errs)
    check_int(md.get("generation"), "metadata.generation", errs, 0)
    for i, f in enumerate(check_list(md.get("finalizers"), "metadata.finalizers", errs)):
        p = at("metadata.finalizers", i)
        s = check_str(f, p, errs, required=True)
        if s is not None and qualified_name_error(s):
            errs.append(FieldError(p, f"{show(_short(s))} {qualified_name_error(s)}"))
    _owner_references(md.get("ownerReferences"), errs)


def _owner_references(v: Any, errs: Errs) -> None:
    path = "metadata.ownerReferences"
    controllers: list[str] = []
    for i, ref in enumerate(check_list(v, path, errs)):
        p = at(path, i)
        ref = check_map(ref, p, errs, required=True)
        if not ref:
            continue
        for field in ("apiVersion", "kind", "name", "uid"):
            check_str(ref.get(field), at(p, field), errs, required=True)
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errs.append(FieldError(path, f"only one reference can have controller set to true "
                                     f"(found {', '.join(controllers)})"))
