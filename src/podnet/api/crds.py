"""podnet's own kinds as CustomResourceDefinitions (issue 15 §1). Pure.

In a real cluster podnet's state (IP pools and the IPAM state: blocks with their node
affinity and allocations, Service IP and NodePort allocations) lives in CRDs of the
`podnet.io` group, as Calico's KDD keeps its state in `crd.projectcalico.org` CRDs.
`crds()` builds them with structural OpenAPI v3 schemas; `tools/gen_crds.py` writes them
to deploy/crds.yaml (a unit test checks the file is what this module builds).
"""
from __future__ import annotations

from typing import Any

from podnet.api.errors import FieldError
from podnet.api.meta import KINDS, is_namespaced

GROUP = "podnet.io"
VERSION = "v1"


def _s(t: str, description: str = "", **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": t, **more}
    if description:
        out["description"] = description
    return out


# kind -> (plural, description, spec properties, required spec fields)
SPECS: dict[str, tuple[str, str, dict[str, Any], list[str]]] = {
    "IPPool": ("ippools", "A pool of pod addresses, as Calico's IPPool: nodes claim blocks of it.", {
        "cidr": _s("string", "The pool's network, e.g. 10.244.0.0/16."),
        "blockSize": _s("integer", "Prefix length of the blocks nodes claim (IPv4 20..32, default "
                                   "26; IPv6 116..128, default 122).", minimum=20, maximum=128),
        "natOutgoing": _s("boolean", "Masquerade traffic from the pool's pods to destinations "
                                     "outside every pool."),
        "disabled": _s("boolean", "No new blocks are claimed from a disabled pool."),
        "nodeSelector": _s("string", "Which nodes may use the pool: all() or a label selector."),
        "vxlanMode": _s("string", "Always, CrossSubnet (only between nodes on different subnets) "
                                  "or Never: encapsulate pod traffic between nodes in VXLAN.",
                        enum=["Always", "CrossSubnet", "Never"]),
        "ipipMode": _s("string", "Only Never: podnet has no IP-in-IP encapsulation (this kernel has "
                                 "no ipip device).", enum=["Never"]),
        "disableBGPExport": _s("boolean", "Do not advertise the pool's blocks to BGP peers outside "
                                          "the cluster (the nodes still route them to each other)."),
    }, ["cidr"]),
    "BGPConfiguration": ("bgpconfigurations", "The cluster's BGP settings, as Calico's (the one "
                                              "named default counts).", {
        "asNumber": _s("integer", "The nodes' AS number (default 64512).", minimum=1,
                       maximum=4294967295),
        "nodeToNodeMeshEnabled": _s("boolean", "Every node peers with every node (default true)."),
        **{f: _s("array", f"Service {what} ranges the nodes advertise.",
                 items={"type": "object", "properties": {"cidr": _s("string")}})
           for f, what in (("serviceClusterIPs", "ClusterIP"), ("serviceExternalIPs", "external IP"),
                           ("serviceLoadBalancerIPs", "LoadBalancer IP"))},
    }, []),
    "BGPPeer": ("bgppeers", "A BGP peer of the nodes (a router, or the nodes peerSelector picks: "
                            "route reflectors), as Calico's BGPPeer.", {
        "peerIP": _s("string", "The peer's address."),
        "asNumber": _s("integer", "The peer's AS number.", minimum=1, maximum=4294967295),
        "node": _s("string", "Only this node peers with it."),
        "nodeSelector": _s("string", "Only the nodes this selector matches peer with it."),
        "peerSelector": _s("string", "The peers are the nodes this selector matches."),
    }, []),
    "IPAMBlock": ("ipamblocks", "A block of a pool claimed by one node (its affinity), and the "
                                "addresses allocated in it (written by podnet's IPAM only).", {
        "cidr": _s("string", "The block's network."),
        "pool": _s("string", "The IPPool the block was cut from."),
        "affinity": _s("string", "host:<node>, the node the block is affine to; null when none.",
                       nullable=True),
        "allocations": _s("object", "Allocated ordinals (offsets in the block) -> the handle "
                                    "that holds each (a pod's).",
                          additionalProperties={"type": "string"}),
        "emptySince": _s("number", "When the block last became empty (Unix seconds); null while "
                                   "it has allocations.", nullable=True),
        "released": _s("object", "Ordinals released recently -> when (Unix seconds): quarantined "
                                 "before reuse.", additionalProperties={"type": "number"}),
    }, ["cidr"]),
    "ServiceIPAllocation": ("serviceipallocations", "A Service's ClusterIP, or its LoadBalancer "
                                                    "address, held by its owner (named after the address).", {
        "service": _s("string", "namespace/name of the Service that holds the address."),
        "family": _s("string", "IPv4 or IPv6.", enum=["IPv4", "IPv6"]),
        "use": _s("string", "LoadBalancer for a load-balancer address (ipam/lbips.py); "
                            "unset for a ClusterIP.", enum=["LoadBalancer"]),
        "pool": _s("string", "The IPPool a load-balancer address was taken from."),
    }, ["service"]),
    "NodePortAllocation": ("nodeportallocations", "A Service's NodePort, held by its owner "
                                                  "(named <protocol>-<port>).", {
        "service": _s("string", "namespace/name of the Service that holds the port."),
        "protocol": _s("string", "TCP, UDP or SCTP.", enum=["TCP", "UDP", "SCTP"]),
        "port": _s("integer", "The node port.", minimum=1, maximum=65535),
    }, ["service", "protocol", "port"]),
}
assert all(KINDS[k][0] == f"{GROUP}/{VERSION}" for k in SPECS)


def schema(kind: str) -> dict[str, Any]:
    """The kind's structural OpenAPI v3 schema (as a CRD version carries it)."""
    _plural, description, props, required = SPECS[kind]
    return {"type": "object", "description": description, "properties": {
        "apiVersion": _s("string"), "kind": _s("string"), "metadata": _s("object"),
        "spec": {"type": "object", "properties": props, "required": required}},
        "required": ["spec"]}


def crd(kind: str) -> dict[str, Any]:
    plural = SPECS[kind][0]
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP,
                     "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                               "singular": kind.lower()},
                     "scope": "Namespaced" if is_namespaced(kind) else "Cluster",
                     "versions": [{"name": VERSION, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema(kind)}}]}}


def crds() -> list[dict[str, Any]]:
    return [crd(k) for k in SPECS]


def check_object(raw: dict[str, Any]) -> list[FieldError]:
    """What a CRD's schema refuses in `raw` (one of SPECS' kinds), as the API server checks a
    custom resource: types, nullable, required, enums, ranges, and no field the schema does
    not describe (kube-apiserver prunes those; podnet refuses them: nothing silently lost)."""
    errs: list[FieldError] = []
    _check(raw, schema(str(raw.get("kind"))), "", errs)
    return errs


_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "string": (str,), "boolean": (bool,),
                                       "array": (list,), "integer": (int,), "number": (int, float)}


def _check(value: Any, s: dict[str, Any], path: str, errs: list[FieldError]) -> None:
    if value is None:
        if not s.get("nullable"):
            errs.append(FieldError(path, "must not be null"))
        return
    t = s["type"]
    if not isinstance(value, _TYPES[t]) or (isinstance(value, bool) and t in ("integer", "number")):
        errs.append(FieldError(path, f"{value!r} is not of type {t}"))
        return
    if "enum" in s and value not in s["enum"]:
        errs.append(FieldError(path, f"{value!r} is not one of {', '.join(map(str, s['enum']))}"))
    if ("minimum" in s and value < s["minimum"]) or ("maximum" in s and value > s["maximum"]):
        errs.append(FieldError(path, f"{value!r} is out of range {s.get('minimum')}..{s.get('maximum')}"))
    if not isinstance(value, dict):
        return
    props = s.get("properties")
    for r in s.get("required", []):
        if r not in value:
            errs.append(FieldError(f"{path}.{r}".lstrip("."), "Required value"))
    for k, v in value.items():
        at = f"{path}.{k}".lstrip(".")
        if props is not None and k in props:
            _check(v, props[k], at, errs)
        elif isinstance(s.get("additionalProperties"), dict):
            _check(v, s["additionalProperties"], at, errs)
        elif props is not None and path:   # the top level keeps status and the like
            errs.append(FieldError(at, "unknown field"))
