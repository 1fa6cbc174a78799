"""The synthetic cluster of bench/policy.py: 2,000 pods, 1,000 NetworkPolicies. Pure.

50 namespaces of 40 pods; pods labelled app=app-<k> (10 apps per namespace), tier=<t>;
namespaces labelled team=<t>. Policies mix every feature: podSelector peers, namespace
selectors, AND form, ipBlocks with excepts, numeric, ranged and named ports, egress.
"""
from __future__ import annotations

import ipaddress

from podnet.api.objects import Namespace, NetworkPolicy, Pod, Resource


def scale_objects(n_pods: int = 2000, n_policies: int = 1000, n_ns: int = 50,
                  node_of=lambda i: "node-1") -> list[Resource]:
    out: list[Resource] = []
    base4 = ipaddress.ip_address("10.244.0.0")
    base6 = ipaddress.ip_address("fd00:10:244::")
    for n in range(n_ns):
        out.append(Namespace({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": f"ns{n}", "labels": {"team": f"t{n % 5}"}}}))
    per_ns = n_pods // n_ns
    for i in range(n_pods):
        ns = f"ns{i // per_ns}"
        out.append(Pod({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"p{i}", "namespace": ns,
                                     "labels": {"app": f"app-{i % 10}", "tier": f"tier{i % 3}"}},
                        "spec": {"nodeName": node_of(i), "containers": [{"name": "c", "image": "x", "ports": [
                            {"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53,
                                                                       "protocol": "UDP"}]}]},
                        "status": {"podIPs": [{"ip": str(base4 + i + 2)}, {"ip": str(base6 + i + 2)}]}}))
    for j in range(n_policies):
        ns = f"ns{j % n_ns}"
        k = j // n_ns
        kind = j % 5
        if kind == 0:
            peers = [{"podSelector": {"matchLabels": {"app": f"app-{(k + 1) % 10}"}}}]
        elif kind == 1:
            peers = [{"namespaceSelector": {"matchLabels": {"team": f"t{k % 5}"}},
                      "podSelector": {"matchLabels": {"tier": f"tier{k % 3}"}}}]
        elif kind == 2:
            peers = [{"ipBlock": {"cidr": f"10.{k % 200}.0.0/16", "except": [f"10.{k % 200}.{j % 250}.0/24"]}}]
        elif kind == 3:
            peers = [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In",
                                                                  "values": [f"t{k % 5}"]}]}}]
        else:
            peers = [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                                            "values": [f"tier{k % 3}"]}]}}]
        ports = [[{"port": 80}], [{"port": 8000, "endPort": 8100}], [{"port": "http"}],
                 [{"protocol": "UDP", "port": "dns"}, {"port": 443}]][j % 4]
        spec = {"podSelector": {"matchLabels": {"app": f"app-{k % 10}"}},
                "ingress": [{"from": peers, "ports": ports}]}
        if j % 3 == 0:
            spec["policyTypes"] = ["Ingress", "Egress"]
            spec["egress"] = [{"to": peers, "ports": ports}]
        out.append(NetworkPolicy({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                  "metadata": {"name": f"np{j}", "namespace": ns}, "spec": spec}))
    return out
