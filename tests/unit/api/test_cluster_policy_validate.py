"""ClusterNetworkPolicy validation (upstream's CRD schema and CEL rules): each bad field
is named in the error, a good policy passes, and the typed view reads what was written."""
from __future__ import annotations

import copy

import pytest

from podnet.api.objects import ClusterNetworkPolicy, from_dict
from podnet.api.validate import validate_object

GOOD = {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "protect-monitoring"},
        "spec": {"tier": "Admin", "priority": 10, "subject": {"namespaces": {"matchLabels": {"team": "mon"}}},
                 "ingress": [{"name": "prometheus", "action": "Accept",
                              "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "prom"}}}}],
                              "protocols": [{"tcp": {"destinationPort": {"number": 9090}}},
                                            {"destinationNamedPort": "metrics"}]},
                             {"action": "Deny", "from": [{"namespaces": {}}]}],
                 "egress": [{"action": "Pass", "to": [{"networks": ["10.0.0.0/8", "fd00::/8"]}, {"nodes": {}}],
                             "protocols": [{"udp": {"destinationPort": {"range": {"start": 53, "end": 54}}}}]}]}}


def _with(path: str, value) -> dict:
    d = copy.deepcopy(GOOD)
    cur = d
    keys = path.split(".")
    for k in keys[:-1]:
        cur = cur[int(k)] if k.isdigit() else cur[k]
    if value is _DEL:
        del cur[keys[-1]]
    else:
        cur[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return d


_DEL = object()


def test_good_policy_is_valid_and_read_back():
    o = from_dict(GOOD)
    assert isinstance(o, ClusterNetworkPolicy) and validate_object(o) == []
    assert (o.tier, o.priority, o.key.namespace) == ("Admin", 10, "")
    assert [r.action for r in o.ingress] == ["Accept", "Deny"] and o.ingress[0].name == "prometheus"
    ports = o.ingress[0].rule.ports
    assert ports is not None and ports[0].port == 9090 and {p.protocol for p in ports[1:]} == {"TCP", "UDP", "SCTP"}
    assert o.egress[0].nodes and o.egress[0].rule.peers[0].ip_block.cidr == "10.0.0.0/8"  # type: ignore[union-attr]


@pytest.mark.parametrize("path,value,want", [
    ("spec.tier", "Developer", 'spec.tier: "Developer" is not one of Admin, Baseline'),
    ("spec.tier", _DEL, "spec.tier: is required"),
    ("spec.priority", 1001, "spec.priority: 1001 is not in 0..1000"),
    ("spec.subject", {}, "spec.subject: must set exactly one of namespaces, pods"),
    ("spec.subject", {"namespaces": {}, "pods": {"podSelector": {}}},
     "spec.subject: must set exactly one of namespaces, pods, not namespaces, pods"),
    ("spec.subject.namespaces", {"matchLabel": {}}, "spec.subject.namespaces.matchLabel: unknown field"),
    ("spec.ingress.0.action", "Allow", 'spec.ingress[0].action: "Allow" is not one of Accept, Deny, Pass'),
    ("spec.ingress.0.from", [], "spec.ingress[0].from: must not be empty"),
    ("spec.ingress.1.from", [{"networks": ["10.0.0.0/8"]}],
     "spec.ingress[1].from[0].networks: unknown field (expected one of namespaces, pods)"),
    ("spec.ingress.0.from.0.pods", {"namespaceSelector": {}}, "spec.ingress[0].from[0].pods.podSelector: is required"),
    ("spec.ingress.0.protocols.0", {"tcp": {}}, "spec.ingress[0].protocols[0].tcp: must set destinationPort"),
    ("spec.ingress.0.protocols.0", {"tcp": {"destinationPort": {"number": 0}}},
     "spec.ingress[0].protocols[0].tcp.destinationPort.number: 0 is not in 1..65535"),
    ("spec.egress.0.protocols.0.udp.destinationPort.range", {"start": 54, "end": 54},
     "spec.egress[0].protocols[0].udp.destinationPort.range: start (54) must be less than end (54)"),
    ("spec.egress.0.protocols", [{"destinationNamedPort": "dns"}],
     "spec.egress[0].protocols: networks/nodes/domainNames peer cannot be set with destinationNamedPort"),
    ("spec.egress.0.to.0.networks", ["10.0.0.0/33"], 'spec.egress[0].to[0].networks[0]: "10.0.0.0/33" is not a valid CIDR'),
    ("spec.egress.0.to.0", {"domainNames": ["example.com"]}, "spec.egress[0].to[0].domainNames: is not supported by podnet"),
    ("spec.ingress.0.name", "n" * 101, "spec.ingress[0].name: is 101 characters long; at most 100"),
    ("spec.ingress", [{"action": "Deny", "from": [{"namespaces": {}}]}] * 26,
     "spec.ingress: has 26 rules; at most 25 are allowed"),
])
def test_bad_field_is_named(path, value, want):
    errs = [str(e) for e in validate_object(from_dict(_with(path, value)))]
    assert any(e.startswith(want) for e in errs), errs

