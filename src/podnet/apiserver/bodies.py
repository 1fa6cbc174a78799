"""Request bodies: content types, decoding, and the object a write is about. Pure.

Accepted: application/json (also when no Content-Type is given, as kube-apiserver) and
application/yaml for create/update; the patch types for PATCH (patch_verb.py decides what
each means); for create/update also Kubernetes' protobuf, which kubectl's typed `create
<kind>` generators send (protobuf.py, for the kinds it has tables of). Anything else is 415; a body that does not
decode, or is not one JSON object, is 400; an object whose kind, apiVersion, namespace or
name disagree with the URL is 400 (as kube-apiserver). Bodies are capped (MAX_BODY, the
3 MiB kube-apiserver accepts) by the HTTP layer before they get here.
"""
from __future__ import annotations

import json
from typing import Any

import yaml

from podnet.api.objects import KINDS
from podnet.apiserver import protobuf
from podnet.apiserver.resources import ApiResource
from podnet.apiserver.status import ApiStatus

MAX_BODY = 3 * 1024 * 1024
JSON = "application/json"
YAML = "application/yaml"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode(data: bytes, content_type: str | None, allowed: tuple[str, ...] = (JSON, YAML)) -> Any:
    mt = media_type(content_type) or allowed[0]  # kube-apiserver: none given = its first (JSON)
    if mt not in allowed:
        raise ApiStatus(415, f'the body of the request was in an unknown format ({mt or "none"}) - '
                             f'accepted media types include: {", ".join(allowed)}')
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiStatus(400, "the body is not UTF-8") from None
    try:
        if mt.endswith("yaml"):
            return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ApiStatus(400, f"the body could not be decoded: {str(e).splitlines()[0][:200]}") from None
    except RecursionError:
        raise ApiStatus(400, "the body could not be decoded: nested too deeply") from None


def object_body(data: bytes, content_type: str | None) -> dict[str, Any]:
    if media_type(content_type) == protobuf.MEDIA_TYPE:
        return protobuf.decode(data)
    obj = decode(data, content_type)
    if not isinstance(obj, dict):
        raise ApiStatus(400, f"the body must be a JSON object, not {type(obj).__name__}")
    return obj


def for_store(obj: dict[str, Any], res: ApiResource, namespace: str, name: str = "") -> dict[str, Any]:
    """The body as the store keeps it, checked against the URL: kind and apiVersion
    must be the resource's (or absent), namespace and name the URL's."""
    kind, av = obj.get("kind"), obj.get("apiVersion")
    if kind not in (None, "", res.kind):
        raise ApiStatus(400, f"the kind of the provided object ({kind}) does not match the "
                             f"resource's ({res.kind})")
    if av not in (None, "", res.api_version):
        raise ApiStatus(400, f"the API version in the data ({av}) does not match the expected "
                             f"API version ({res.api_version})")
    md = obj.get("metadata")
    if md is None:
        md = obj["metadata"] = {}
    if not isinstance(md, dict):
        raise ApiStatus(400, "metadata must be an object")
    if res.namespaced:
        have = md.get("namespace")
        if have not in (None, "") and have != namespace:
            raise ApiStatus(400, "the namespace of the provided object does not match the "
                                 "namespace sent on the request")
        md["namespace"] = namespace
    else:
        md.pop("namespace", None)
    if name:
        if md.get("name") not in (None, "", name):
            raise ApiStatus(400, "the name of the object "
                                 f"({md.get('name')}) does not match the name on the URL ({name})")
        md["name"] = name
    out = dict(obj)
    out["kind"] = res.kind
    out["apiVersion"] = KINDS.get(res.kind, (res.api_version, True))[0]
    return out
