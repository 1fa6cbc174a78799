"""Schemas for the OpenAPI documents (what `kubectl explain` reads). Pure, but for reading
one data file.

The Kubernetes kinds' schemas come from openapi_schemas.json, generated from the official
client's models (tools/gen_openapi_schemas.py); podnet's own kinds (IPPool, IPAMBlock)
are described here. Each group/version document carries its kinds' schemas, tagged
`x-kubernetes-group-version-kind`, and every schema they refer to.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from podnet.apiserver.resources import ApiResource

DATA = Path(__file__).with_name("openapi_schemas.json")
_META = {"allOf": [{"$ref": "#/components/schemas/V1ObjectMeta"}],
         "description": "Standard object's metadata."}


OWN_COMPONENTS: dict[str, dict[str, Any]] = {}


def _podnet(description: str, spec: dict[str, Any], kind: str = "") -> dict[str, Any]:
    name = f"PodnetV1{kind}Spec"
    OWN_COMPONENTS[name] = {"type": "object", "description": f"The {kind}'s desired state.",
                            "properties": spec}
    return {"type": "object", "description": description, "properties": {
        "apiVersion": {"type": "string", "description": "The group/version of the object."},
        "kind": {"type": "string", "description": kind},
        "metadata": _META,
        "spec": {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "description": f"The {kind}'s spec."}}}


OWN: dict[str, dict[str, Any]] = {
    "IPPool": _podnet("A pool of pod addresses, as Calico's IPPool: nodes claim blocks of it.", {
        "cidr": {"type": "string", "description": "The pool's network, e.g. 10.244.0.0/16."},
        "blockSize": {"type": "integer", "description": "Prefix length of the blocks nodes claim "
                                                        "(IPv4 20..32, default 26; IPv6 116..128, default 122)."},
        "natOutgoing": {"type": "boolean", "description": "Masquerade traffic from the pool's pods to "
                                                          "destinations outside every pool."},
        "disabled": {"type": "boolean", "description": "No new blocks are claimed from a disabled pool."},
        "nodeSelector": {"type": "string", "description": "Which nodes may use the pool: all() or a "
                                                          "label selector."},
        "vxlanMode": {"type": "string", "description": "Always, CrossSubnet (only between nodes on "
                                                       "different subnets) or Never: encapsulate pod "
                                                       "traffic between nodes in VXLAN."},
        "disableBGPExport": {"type": "boolean", "description": "Do not advertise the pool's blocks to "
                                                               "BGP peers outside the cluster."},
        "allowedUses": {"type": "array", "items": {"type": "string"},
                        "description": "As Calico's: Workload and Tunnel (the default) or LoadBalancer "
                                       "(addresses for type LoadBalancer Services, handed out by "
                                       "the load-balancer controller)."}}, "IPPool"),
    # upstream's CRD (kubernetes-sigs/network-policy-api), its top-level fields described
    "ClusterNetworkPolicy": _podnet("A cluster-wide network policy (policy.networking.k8s.io/v1alpha2): "
                                    "Admin tier before NetworkPolicy, Baseline tier after.", {
        "tier": {"type": "string", "enum": ["Admin", "Baseline"],
                 "description": "Admin: evaluated before NetworkPolicy; Baseline: after it."},
        "priority": {"type": "integer", "minimum": 0, "maximum": 1000,
                     "description": "Precedence within the tier: lower first (podnet orders equal "
                                    "priorities by name)."},
        "subject": {"type": "object", "description": "The pods the policy applies to: exactly one of "
                                                     "namespaces (a label selector) or pods "
                                                     "(namespaceSelector and podSelector)."},
        "ingress": {"type": "array", "items": {"type": "object"},
                    "description": "Up to 25 rules in order: name, action (Accept, Deny, Pass), from "
                                   "(namespaces or pods peers), protocols (tcp/udp/sctp destinationPort "
                                   "number or range, or destinationNamedPort)."},
        "egress": {"type": "array", "items": {"type": "object"},
                   "description": "Up to 25 rules in order: as ingress, with `to`, whose peers may also "
                                  "be nodes (a label selector) or networks (CIDRs)."}}, "ClusterNetworkPolicy"),
    "IPAMBlock": _podnet("A block of a pool claimed by one node, and its allocations (written by "
                         "podnet's IPAM only).", {
        "cidr": {"type": "string"}, "pool": {"type": "string"},
        "node": {"type": "string", "description": "The node the block is affine to."}}, "IPAMBlock"),
    "BGPConfiguration": _podnet("The cluster's BGP settings (the one named default counts).", {
        "asNumber": {"type": "integer", "description": "The nodes' AS number (default 64512)."},
        "nodeToNodeMeshEnabled": {"type": "boolean", "description": "Every node peers with every node."},
        "serviceClusterIPs": {"type": "array", "items": {"type": "object"}},
        "serviceExternalIPs": {"type": "array", "items": {"type": "object"}},
        "serviceLoadBalancerIPs": {"type": "array", "items": {"type": "object"}}}, "BGPConfiguration"),
    "BGPPeer": _podnet("A BGP peer of the nodes, as Calico's BGPPeer.", {
        "peerIP": {"type": "string"}, "asNumber": {"type": "integer"}, "node": {"type": "string"},
        "nodeSelector": {"type": "string"}, "peerSelector": {"type": "string"}}, "BGPPeer"),
    "SelfSubjectAccessReview": _podnet("Asks whether the requester may do something (kubectl auth can-i).", {
        "resourceAttributes": {"type": "object", "description": "namespace, verb, group, resource, "
                                                                "subresource, name"},
        "nonResourceAttributes": {"type": "object", "description": "path, verb"}}, "SelfSubjectAccessReview"),
    "SelfSubjectReview": _podnet("Asks who the server takes the requester for (kubectl auth whoami).", {},
                                 "SelfSubjectReview"),
}


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def _refs(schema: Any, out: set[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            out.add(ref.rsplit("/", 1)[1])
        for v in schema.values():
            _refs(v, out)
    elif isinstance(schema, list):
        for v in schema:
            _refs(v, out)


def for_group_version(rs: Sequence[ApiResource]) -> dict[str, Any]:
    data = _data()
    all_schemas: dict[str, Any] = {**data["schemas"], **OWN_COMPONENTS}
    out: dict[str, Any] = {}
    todo: set[str] = set()
    kinds = [(r.kind, r) for r in rs] + [("Scale", r) for r in rs if "scale" in r.subresources]
    for kind, r in kinds:
        model = data["roots"].get(kind)
        base = OWN.get(kind) if model is None else all_schemas.get(model)
        if base is None:
            continue
        s = copy.deepcopy(base)
        gvk = ({"group": "autoscaling", "version": "v1", "kind": "Scale"} if kind == "Scale"
               else {"group": r.group, "version": r.version, "kind": r.kind})
        s["x-kubernetes-group-version-kind"] = [gvk]
        out[f"{gvk['group'] or 'core'}.{gvk['version']}.{kind}"] = s
        _refs(s, todo)
    while todo:
        name = todo.pop()
        if name in out or name not in all_schemas:
            continue
        out[name] = all_schemas[name]
        _refs(out[name], todo)
    return out
