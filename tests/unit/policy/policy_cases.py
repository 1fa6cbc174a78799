"""Load tests/golden/policy/cases.yaml: the NetworkPolicy cases shared by the calc tests
and the kernel tests (real packets). Each step: the policies in force and expected tables."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from podnet.api.objects import ClusterNetworkPolicy, NetworkPolicy, Node, Resource
from podnet.calc.policy.table import TruthTable

CASES_FILE = Path(__file__).resolve().parents[2] / "golden" / "policy" / "cases.yaml"
# ClusterNetworkPolicy cases: the same shape, plus `cnp:` entries (name and spec)
CLUSTER_CASES_FILE = CASES_FILE.with_name("cluster_cases.yaml")


@dataclass
class Probe:
    port: int
    protocol: str
    family: int
    targets_extra: list[str]
    expected: TruthTable


@dataclass
class Step:
    policies: list[Resource]  # NetworkPolicies, ClusterNetworkPolicies and the Nodes they name
    probes: list[Probe]


def make_policy(ns: str, name: str, spec: dict) -> NetworkPolicy:
    return NetworkPolicy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": name, "namespace": ns}, "spec": spec})


def make_cluster_policy(name: str, spec: dict) -> ClusterNetworkPolicy:
    return ClusterNetworkPolicy({"apiVersion": "policy.networking.k8s.io/v1alpha2",
                                 "kind": "ClusterNetworkPolicy", "metadata": {"name": name}, "spec": spec})


def make_node(name: str, labels: dict, addresses: list[str]) -> Node:
    return Node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                 "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]}})


def load_cases(path: Path = CASES_FILE) -> dict[str, list[Step]]:
    data = yaml.safe_load(path.read_text())
    out: dict[str, list[Step]] = {}
    for name, steps in data["cases"].items():
        out[name] = []
        for st in steps:
            pols: list[Resource] = [make_policy(p["ns"], p["name"], p["spec"]) for p in st.get("np") or ()]
            pols += [make_cluster_policy(p["name"], p["spec"]) for p in st.get("cnp") or ()]
            pols += [make_node(n["name"], n.get("labels") or {}, n["addresses"]) for n in st.get("nodes") or ()]
            probes = []
            for pr in st["probes"]:
                port, proto = int(pr.get("port", 80)), str(pr.get("protocol", "TCP"))
                probes.append(Probe(port, proto, int(pr.get("family", 4)),
                                    list(pr.get("targets_extra", [])),
                                    TruthTable.parse(pr["table"], port, proto)))
            out[name].append(Step(pols, probes))
    return out
