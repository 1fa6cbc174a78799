"""podnet's kinds as CRDs (issue 15 §1): deploy/crds.yaml is what podnet.api.crds builds, the
schemas are structural, and the objects podnet's code writes fit them."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from podnet.api.crds import SPECS, check_object, crds, schema
from podnet.api.meta import INTERNAL_KINDS, KINDS
from podnet.api.objects import from_dict
from podnet.ipam.blocks import new_block
from podnet.ipam.cidr import parse_network
from podnet.ipam import serviceips
from builders import make_pool

ROOT = Path(__file__).resolve().parents[3]


def test_deploy_crds_yaml_is_generated():
    spec = importlib.util.spec_from_file_location("gen_crds", ROOT / "tools" / "gen_crds.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "deploy" / "crds.yaml").read_text() == gen.render(), "run tools/gen_crds.py"
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "crds.yaml").read_text()) if d]
    assert docs == crds()


def test_every_podnet_kind_has_a_crd_and_every_crd_a_kind():
    podnet_kinds = {k for k, (api, _ns) in KINDS.items() if api.startswith("podnet.io/") and k != "Node"}
    assert set(SPECS) == podnet_kinds  # Node is core v1 in the API (podnet.io/v1 only in the store)
    assert INTERNAL_KINDS <= set(SPECS)
    for c in crds():
        assert c["metadata"]["name"] == f"{c['spec']['names']['plural']}.podnet.io"
        assert c["spec"]["scope"] == "Cluster"


def _structural(s: dict[str, Any], path: str) -> None:
    assert "type" in s, f"{path}: every node of a structural schema has a type"
    for k, v in (s.get("properties") or {}).items():
        _structural(v, f"{path}.{k}")
    if isinstance(s.get("additionalProperties"), dict):
        _structural(s["additionalProperties"], f"{path}.*")


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_schemas_are_structural(kind):
    _structural(schema(kind), kind)


def test_what_podnet_writes_fits_the_schemas():
    block = new_block(parse_network("10.244.1.0/26", "cidr"), "default-ipv4", "n1")
    raw = block.to_resource().to_dict()
    raw["spec"]["allocations"] = {"0": "pod:default/a", "5": "pod:default/b"}
    raw["spec"]["released"] = {"3": 1764750000.5}
    svc = from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"ports": [{"port": 80}]}})
    objects = [make_pool("default-ipv4", "10.244.0.0/16").to_dict(), raw,
               serviceips._alloc(serviceips.IP_KIND, "10.96.0.10", svc, {"family": "IPv4"}).to_dict(),
               serviceips._alloc(serviceips.PORT_KIND, "tcp-30080", svc,
                                 {"protocol": "TCP", "port": 30080}).to_dict()]
    for obj in objects:
        assert check_object(obj) == [], obj
    bad = dict(raw, spec={**raw["spec"], "allocations": {"0": 7}, "surprise": 1})
    assert sorted(map(str, check_object(bad))) == ["spec.allocations.0: 7 is not of type string",
                                                   "spec.surprise: unknown field"]
    assert [str(e) for e in check_object({"kind": "NodePortAllocation", "spec": {
        "service": "a/b", "protocol": "TCP", "port": 70000}})] == ["spec.port: 70000 is out of range 1..65535"]
