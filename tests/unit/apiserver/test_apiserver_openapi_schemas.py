"""The OpenAPI schemas: the committed file is what the generator makes from the pinned
official client, and unknown fields are found (fieldValidation) as kube-apiserver does."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from podnet.apiserver import schemas, strict
from podnet.apiserver.status import ApiStatus

TOOL = Path(__file__).resolve().parents[3] / "tools" / "gen_openapi_schemas.py"


def test_committed_schemas_match_the_pinned_client():
    spec = importlib.util.spec_from_file_location("gen_openapi_schemas", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert json.loads(schemas.DATA.read_text()) == json.loads(json.dumps(mod.generate())), \
        "run .venv/bin/python tools/gen_openapi_schemas.py"


def pod(**container):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "x", **container}]},
            "status": {"podnet": "anything"}}


def test_unknown_fields_anywhere_in_the_tree():
    assert strict.unknown_fields(pod(), "Pod") == []
    assert sorted(strict.unknown_fields(pod(ports=[{"containerPort": 80, "bogus": 1}], extra=2), "Pod")) == \
        ["spec.containers[0].extra", "spec.containers[0].ports[0].bogus"]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "nope": 1},
           "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selector": {"any": "label"}}}
    assert strict.unknown_fields(svc, "Service") == ["metadata.nope"]
    assert strict.unknown_fields({"spec": {"whatever": 1}}, "IPPool") == []   # podnet's validation checks its own kinds


def test_modes():
    bad = pod(bogus=1)
    with pytest.raises(ApiStatus) as e:
        strict.check(bad, "Pod", "Strict")
    assert e.value.code == 400 and 'unknown field "spec.containers[0].bogus"' in e.value.message
    assert strict.check(bad, "Pod", None) == ['unknown field "spec.containers[0].bogus"']
    assert strict.check(bad, "Pod", "Ignore") == []
    with pytest.raises(ApiStatus):
        strict.check(bad, "Pod", "Loose")


def test_every_group_version_document_resolves_its_references():
    from podnet.apiserver import openapi
    root = json.loads(openapi.document("/openapi/v3"))
    for entry in root["paths"].values():
        doc = json.loads(openapi.document(entry["serverRelativeURL"].split("?")[0]))
        comps = doc["components"]["schemas"]
        refs: set[str] = set()
        schemas._refs(comps, refs)
        assert refs <= set(comps), refs - set(comps)
        kinds = {g["kind"] for s in comps.values() for g in s.get("x-kubernetes-group-version-kind", [])}
        assert kinds
