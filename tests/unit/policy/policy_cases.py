"""Load tests/golden/policy/cases.yaml: the NetworkPolicy cases shared by the calc tests
and the kernel tests (real packets). Each step: the policies in force and expected tables."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from podnet.api.objects import NetworkPolicy, Resource
from podnet.calc.policy.table import TruthTable

CASES_FILE = Path(__file__).resolve().parents[2] / "golden" / "policy" / "cases.yaml"


@dataclass
class Probe:
    port: int
    protocol: str
    family: int
    targets_extra: list[str]
    expected: TruthTable


@dataclass
class Step:
    policies: list[Resource]
    probes: list[Probe]


def make_policy(ns: str, name: str, spec: dict) -> NetworkPolicy:
    return NetworkPolicy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": name, "namespace": ns}, "spec": spec})


def load_cases() -> dict[str, list[Step]]:
    data = yaml.safe_load(CASES_FILE.read_text())
    out: dict[str, list[Step]] = {}
    for name, steps in data["cases"].items():
        out[name] = []
        for st in steps:
            pols: list[Resource] = [make_policy(p["ns"], p["name"], p["spec"]) for p in st["np"]]
            probes = []
            for pr in st["probes"]:
                port, proto = int(pr.get("port", 80)), str(pr.get("protocol", "TCP"))
                probes.append(Probe(port, proto, int(pr.get("family", 4)),
                                    list(pr.get("targets_extra", [])),
                                    TruthTable.parse(pr["table"], port, proto)))
            out[name].append(Step(pols, probes))
    return out
