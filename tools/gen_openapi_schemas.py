"""Generate src/podnet/apiserver/openapi_schemas.json from the official Kubernetes client.

The pinned `kubernetes` Python package (a test extra) is generated from kube-apiserver's
own OpenAPI document: each model class carries its fields' JSON names (attribute_map),
types (openapi_types), required-ness and descriptions. This walks the models reachable
from the kinds podnet serves and writes them as OpenAPI v3 component schemas, so the
API server can answer `kubectl explain` without the client installed.
tests/unit/apiserver/test_apiserver_openapi_schemas.py checks the committed file is what
this script makes from the pinned client.

    .venv/bin/python tools/gen_openapi_schemas.py
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src" / "podnet" / "apiserver" / "openapi_schemas.json"
# served kind -> the client's model class
ROOTS = {"Namespace": "V1Namespace", "Pod": "V1Pod", "Service": "V1Service", "Node": "V1Node",
         "Endpoints": "V1Endpoints", "Deployment": "V1Deployment", "EndpointSlice": "V1EndpointSlice",
         "NetworkPolicy": "V1NetworkPolicy", "Scale": "V1Scale"}
_SCALARS = {"str": {"type": "string"}, "int": {"type": "integer"}, "bool": {"type": "boolean"},
            "float": {"type": "number"}, "datetime": {"type": "string", "format": "date-time"},
            "date": {"type": "string", "format": "date"}, "object": {"x-kubernetes-int-or-string": True},
            "bytearray": {"type": "string", "format": "byte"}}


def _type(t: str, todo: list[str]) -> dict[str, Any]:
    m = re.fullmatch(r"List\[(.+)\]", t) or re.fullmatch(r"list\[(.+)\]", t)
    if m:
        return {"type": "array", "items": _type(m[1], todo)}
    m = re.fullmatch(r"Dict\[str, (.+)\]", t) or re.fullmatch(r"dict\(str, (.+)\)", t)
    if m:
        return {"type": "object", "additionalProperties": _type(m[1], todo)}
    if t in _SCALARS:
        return dict(_SCALARS[t])
    todo.append(t)
    return {"$ref": f"#/components/schemas/{t}"}


def _doc(cls: Any) -> str:
    text = (cls.__doc__ or "").split("Attributes:")[0]
    return " ".join(text.split())


def schema_of(cls: Any, todo: list[str]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required = []
    for attr, json_name in cls.attribute_map.items():
        s = _type(cls.openapi_types[attr], todo)
        f = cls.model_fields.get(attr)
        if f is not None and f.description:
            s = {"allOf": [s], "description": f.description} if "$ref" in s else {**s, "description": f.description}
        if f is not None and f.is_required():
            required.append(json_name)
        props[json_name] = s
    out: dict[str, Any] = {"type": "object", "description": _doc(cls), "properties": props}
    if required:
        out["required"] = sorted(required)
    return out


def generate() -> dict[str, Any]:
    import kubernetes.client.models as models
    schemas: dict[str, Any] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        schemas[name] = schema_of(getattr(models, name), todo)
    import kubernetes
    return {"generatedFrom": f"kubernetes=={kubernetes.__version__}", "roots": ROOTS,
            "schemas": dict(sorted(schemas.items()))}


def main() -> int:
    OUT.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
