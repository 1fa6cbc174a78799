"""The ClusterNetworkPolicies bench/policy.py adds on top of its 1,000 NetworkPolicies
(issue 20 §5): half in the Admin tier, half in Baseline, priorities with ties, subjects by
namespace and by pod, every peer kind. None decides the bench's client -> server
connection (so it still passes, through every Admin chain of both pods and the v1 rules),
but every pod carries ~20 Admin and ~7 Baseline chains per direction."""
from __future__ import annotations

from podnet.api.objects import ClusterNetworkPolicy


def _cnp(name: str, spec: dict) -> ClusterNetworkPolicy:
    return ClusterNetworkPolicy({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                                 "metadata": {"name": name}, "spec": spec})


def cluster_policies(n: int = 200) -> list[ClusterNetworkPolicy]:
    out = []
    for i in range(n):
        team = {"matchLabels": {"team": f"t{i % 5}"}}
        if i % 2 == 0:
            out.append(_cnp(f"admin-{i}", {
                "tier": "Admin", "priority": (i // 2) % 50, "subject": {"namespaces": team},
                "ingress": [{"action": "Deny", "from": [{"pods": {"namespaceSelector": {},
                                                                  "podSelector": {"matchLabels": {"app": f"blocked-{i}"}}}}]},
                            {"action": "Pass", "from": [{"namespaces": {"matchLabels": {"team": f"t{(i + 1) % 5}"}}}],
                             "protocols": [{"tcp": {"destinationPort": {"number": 9000 + i % 100}}}]}],
                "egress": [{"action": "Deny", "to": [{"networks": [f"192.0.2.{i % 250}/32", f"2001:db8::{i:x}/128"]}]},
                           {"action": "Accept", "to": [{"nodes": {"matchLabels": {"bench": f"n{i}"}}}]}]}))
        else:
            out.append(_cnp(f"baseline-{i}", {
                "tier": "Baseline", "priority": (i // 2) % 50,
                "subject": {"pods": {"namespaceSelector": team, "podSelector": {"matchLabels": {"tier": f"tier{i % 3}"}}}},
                "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"team": f"none-{i}"}}}],
                             "protocols": [{"destinationNamedPort": "http"}]}],
                "egress": [{"action": "Deny", "to": [{"networks": [f"198.51.100.{i % 250}/32"]}]},
                           {"action": "Pass", "to": [{"pods": {"namespaceSelector": {},
                                                               "podSelector": {"matchLabels": {"app": f"gone-{i}"}}}}]}]}))
    return out
