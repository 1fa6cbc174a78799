"""Generate src/podnet/apiserver/proto_fields.json: the protobuf field tables of the
Kubernetes kinds kubectl's typed `create` generators send as protobuf.

Reads the generated.proto files of k8s.io/api (core/v1, apps/v1, authorization/v1,
authentication/v1) and
k8s.io/apimachinery (meta/v1, runtime, util/intstr, api/resource) given on the command
line, keeps the messages reachable from ROOTS, and writes, per message, its fields by
number: [json name, type (a scalar or a message's full name), repeated?, map value type].

    .venv/bin/python tools/gen_proto_fields.py core.proto apps.proto meta.proto ...
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src" / "podnet" / "apiserver" / "proto_fields.json"
ROOTS = {"Namespace": "k8s.io.api.core.v1.Namespace", "Service": "k8s.io.api.core.v1.Service",
         "Pod": "k8s.io.api.core.v1.Pod", "Deployment": "k8s.io.api.apps.v1.Deployment",
         "SelfSubjectAccessReview": "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
         "SelfSubjectReview": "k8s.io.api.authentication.v1.SelfSubjectReview"}
SCALARS = {"string", "bytes", "int32", "int64", "uint32", "uint64", "bool", "double", "float", "sint32", "sint64"}
_FIELD = re.compile(r"^\s*(optional|repeated)?\s*([\w.]+)\s+(\w+)\s*=\s*(\d+)")
_MAP = re.compile(r"^\s*map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)")


def parse(text: str, messages: dict[str, dict[str, Any]]) -> None:
    pkg = re.search(r"^package\s+([\w.]+);", text, re.M)[1]
    cur = None

    def full(t: str) -> str:
        t = t.lstrip(".")
        return t if t in SCALARS or "." in t else f"{pkg}.{t}"
    for line in text.splitlines():
        line = line.split("//")[0]
        m = re.match(r"^message\s+(\w+)\s*\{", line)
        if m:
            cur = messages.setdefault(f"{pkg}.{m[1]}", {})
            continue
        if line.strip() == "}":
            cur = None
            continue
        if cur is None:
            continue
        mm = _MAP.match(line)
        if mm:
            cur[mm[4]] = [mm[3], "map", False, full(mm[2])]
            continue
        fm = _FIELD.match(line)
        if fm:
            cur[fm[4]] = [fm[3], full(fm[2]), fm[1] == "repeated", None]


def main(paths: list[str]) -> int:
    messages: dict[str, dict[str, Any]] = {}
    for p in paths:
        parse(Path(p).read_text(), messages)
    keep: dict[str, Any] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in keep or name not in messages:
            continue
        keep[name] = messages[name]
        for _, typ, _, val in messages[name].values():
            for t in (typ, val):
                if t and t not in SCALARS and t != "map":
                    todo.append(t)
    OUT.write_text(json.dumps({"roots": ROOTS, "scalars": sorted(SCALARS), "messages": dict(sorted(keep.items()))}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(keep)} messages)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
