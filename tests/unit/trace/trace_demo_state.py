"""The demo (examples/demo) as a fixed, hand-built cluster state: two nodes
(198.18.0.11/12), pods with fixed addresses and uids, the web Service with fixed virtual
IPs and its EndpointSlices, as the lab would have them after `podnet demo` step 1."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from podnet.api.objects import Resource, from_dict
from podnet.calc.model import ClusterState
from podnet.trace.facts import LabFacts, NodeFacts

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"
LAB = "demo"
VIP4, VIP6 = "10.96.0.20", "fd00:10:96::14"

# name, namespace, node, ipv4, ipv6, labels (None: from its manifest)
PODS = [
    ("client", "shop", "n1", "10.244.0.2", "fd00:10:244::2", None),
    ("web-5d8f7-a1", "shop", "n1", "10.244.0.3", "fd00:10:244::3", {"app": "web"}),
    ("web-5d8f7-b2", "shop", "n2", "10.244.0.66", "fd00:10:244::42", {"app": "web"}),
    ("web-5d8f7-c3", "shop", "n2", "10.244.0.67", "fd00:10:244::43", {"app": "web"}),
    ("worker", "batch", "n2", "10.244.0.68", "fd00:10:244::44", None),
]


def manifests(*files: str) -> list[dict[str, Any]]:
    out = []
    for f in files:
        out += [d for d in yaml.safe_load_all((DEMO / f).read_text()) if d]
    return out


def _uid(i: int) -> str:
    return f"{i:08x}-7a3e-4c1b-9d2f-00000000{i:04x}"


def _pod(i: int, name: str, ns: str, node: str, ip4: str, ip6: str, labels: dict | None,
         raw: dict[str, Any] | None, template: dict[str, Any]) -> Resource:
    d = dict(raw) if raw else {"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": ns, "labels": labels},
                                "spec": template["spec"]}
    md = dict(d["metadata"], uid=_uid(i),
              annotations={"podnet.io/netns": f"pn-{LAB}-p{_uid(i).replace('-', '')[:10]}"})
    spec = dict(d["spec"], nodeName=node)
    status = {"phase": "Running", "podIP": ip4, "podIPs": [{"ip": ip4}, {"ip": ip6}],
              "hostIP": {"n1": "198.18.0.11", "n2": "198.18.0.12"}[node],
              "conditions": [{"type": "Ready", "status": "True"}]}
    return from_dict({**d, "metadata": md, "spec": spec, "status": status})


def _node(name: str, ip4: str, ip6: str) -> Resource:
    return from_dict({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                      "status": {"addresses": [{"type": "InternalIP", "address": ip4},
                                               {"type": "InternalIP", "address": ip6}]}})


def _block(cidr: str, node: str) -> Resource:
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "IPAMBlock",
                      "metadata": {"name": cidr.replace("/", "-").replace(":", "-")},
                      "spec": {"cidr": cidr, "affinity": f"host:{node}", "allocations": {}}})


def _slice(fam: int, eps: list[tuple[str, str, str]]) -> Resource:
    return from_dict({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"web-ipv{fam}", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": f"IPv{fam}",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node,
                       "targetRef": {"kind": "Pod", "namespace": "shop", "name": name}}
                      for name, node, ip in eps]})


def objects(policies: tuple[str, ...] = (), nat_outgoing: bool = True, node_port: int = 0,
            traffic: dict[str, str] | None = None, unready: tuple[str, ...] = ()) -> list[Resource]:
    """`traffic`: the web Service's internal/externalTrafficPolicy fields; `unready`: web
    pods left out of its EndpointSlices."""
    docs = manifests("00-namespaces.yaml", "10-ippools.yaml", "20-web.yaml", "30-clients.yaml",
                     *policies)
    out: list[Resource] = []
    template: dict[str, Any] = {}
    raw_pods = {}
    for d in docs:
        kind = d["kind"]
        if kind == "Deployment":
            template = d["spec"]["template"]
            continue
        if kind == "Pod":
            raw_pods[d["metadata"]["name"]] = d
            continue
        if kind == "Namespace":
            d = {**d, "metadata": {**d["metadata"], "labels": {
                **d["metadata"].get("labels", {}), "kubernetes.io/metadata.name": d["metadata"]["name"]}}}
        if kind == "IPPool":
            d = {**d, "spec": {**d["spec"], "natOutgoing": nat_outgoing}}
        if kind == "Service":
            d = {**d, "spec": {**d["spec"], "clusterIP": VIP4, "clusterIPs": [VIP4, VIP6],
                               "ipFamilies": ["IPv4", "IPv6"]}}
            d["spec"] = {**d["spec"], **(traffic or {})}
            if node_port:
                d["spec"] = {**d["spec"], "type": "NodePort",
                             "ports": [{**d["spec"]["ports"][0], "nodePort": node_port}]}
        out.append(from_dict(d))
    for i, (name, ns, node, ip4, ip6, labels) in enumerate(PODS, 1):
        out.append(_pod(i, name, ns, node, ip4, ip6, labels, raw_pods.get(name), template))
    out += [_node("n1", "198.18.0.11", "fd00:198:18::11"), _node("n2", "198.18.0.12", "fd00:198:18::12")]
    out += [_block("10.244.0.0/26", "n1"), _block("10.244.0.64/26", "n2"),
            _block("fd00:10:244::/122", "n1"), _block("fd00:10:244::40/122", "n2")]
    web = [(n, node, (ip4, ip6)) for n, _, node, ip4, ip6, lab in PODS
           if lab == {"app": "web"} and n not in unready]
    out.append(_slice(4, [(n, node, ips[0]) for n, node, ips in web]))
    out.append(_slice(6, [(n, node, ips[1]) for n, node, ips in web]))
    return out


def state(policies: tuple[str, ...] = (), nat_outgoing: bool = True, node_port: int = 0,
          traffic: dict[str, str] | None = None, unready: tuple[str, ...] = ()) -> ClusterState:
    return ClusterState.from_objects(objects(policies, nat_outgoing, node_port, traffic, unready))


def facts(encap: str = "none", routing: str = "static") -> LabFacts:
    p = f"pn-{LAB}-"
    return LabFacts(LAB, (NodeFacts("n1", p + "n1", "198.18.0.11", "fd00:198:18::11"),
                          NodeFacts("n2", p + "n2", "198.18.0.12", "fd00:198:18::12")),
                    encap, p + "ul", p + "rt", p + "out",
                    outside_names={"www.example.test": ("203.0.113.10", "fd00:203:113::10")},
                    routing=routing)
