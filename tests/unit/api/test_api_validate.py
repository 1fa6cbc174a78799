"""Validation messages, exactly as the user reads them: one table row per rule."""
from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from podnet.api.codec import load_text
from podnet.api.errors import InvalidObjects
from podnet.api.objects import from_dict
from podnet.api.validate import validate_manifests, validate_object

SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
       "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}},
       "spec": {"containers": [{"name": "c", "image": "podnet/serve",
                                "ports": [{"name": "http", "containerPort": 8080}]}]}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}}, "spec": copy.deepcopy(POD["spec"])}}}
NETPOL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
          "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}]}}
POOL = {"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
        "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "natOutgoing": True}}
SLICE = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"port": 8080}]}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {"podCIDRs": ["10.244.0.0/24"]}}


def make(base: dict[str, Any], mutate: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    d = copy.deepcopy(base)
    if mutate:
        mutate(d)
    return d


def errors(d: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate_object(from_dict(d))]


@pytest.mark.parametrize("base", [SVC, POD, DEPLOY, NETPOL, POOL, SLICE, NS, NODE,
                                  make(POD, lambda d: d["metadata"].update(
                                      annotations={"podnet.io/ipAddrs": '["10.244.1.5", "fd00:10:244::5"]'})),
                                  make(DEPLOY, lambda d: d["spec"].update(replicas=1) or d["spec"]["template"]["metadata"]
                                       .update(annotations={"cni.projectcalico.org/ipAddrs": '["10.244.1.5"]'})),
                                  make(POOL, lambda d: d["spec"].update(cidr="fd00:10:244::/56", blockSize=122))])
def test_valid_objects_have_no_errors(base):
    assert errors(base) == []


def sp(d):
    return d["spec"]


CASES = [
    # identity
    ("kind missing", make(SVC, lambda d: d.pop("kind")), ["kind: is required"]),
    ("unknown kind", make(SVC, lambda d: d.update(kind="Ingress")),
     ['kind: unknown kind "Ingress" (podnet serves BGPConfiguration, BGPPeer, ClusterNetworkPolicy, Deployment, EndpointSlice, IPPool, Namespace, '
      'NetworkPolicy, Node, Pod, Service)']),
    ("wrong apiVersion", make(DEPLOY, lambda d: d.update(apiVersion="extensions/v1beta1")),
     ['apiVersion: "extensions/v1beta1" does not serve kind Deployment (use apps/v1)']),
    ("internal kind", {"apiVersion": "podnet.io/v1", "kind": "IPAMBlock", "metadata": {"name": "b"}},
     ["kind: IPAMBlock is podnet's internal state and cannot be applied"]),
    ("name missing", make(POD, lambda d: d["metadata"].pop("name")), ["metadata.name: is required"]),
    # names: which rule per kind
    ("service name is DNS-1035", make(SVC, lambda d: d["metadata"].update(name="1web")),
     ['metadata.name: "1web" is not a valid DNS-1035 label (lowercase letters, digits and \'-\', '
      "starting with a letter, ending with a letter or digit, at most 63 characters)"]),
    ("pod name may have dots", make(POD, lambda d: d["metadata"].update(name="a.b-1")), []),
    ("namespace name is a label", make(NS, lambda d: d["metadata"].update(name="a.b")),
     ['metadata.name: "a.b" is not a valid DNS-1123 label (lowercase letters, digits and \'-\', '
      "starting and ending with a letter or digit, at most 63 characters)"]),
    ("upper case", make(POD, lambda d: d["metadata"].update(name="Web")),
     ['metadata.name: "Web" is not a valid DNS-1123 subdomain (lowercase letters, digits, \'-\' and '
      "'.', starting and ending with a letter or digit, at most 253 characters)"]),
    ("namespace field", make(POD, lambda d: d["metadata"].update(namespace="my_ns")),
     ['metadata.namespace: "my_ns" is not a valid DNS-1123 label (lowercase letters, digits and \'-\', '
      "starting and ending with a letter or digit, at most 63 characters)"]),
    # labels
    ("label key prefix", make(POD, lambda d: d["metadata"].update(labels={"Example.com/x": "y"})),
     ['metadata.labels: key "Example.com/x" has an invalid prefix "Example.com": must be a DNS-1123 subdomain']),
    ("label key too long", make(POD, lambda d: d["metadata"].update(labels={"k" * 64: "y"})),
     [f'metadata.labels: key "{"k" * 64}" name part is longer than 63 characters']),
    ("label value syntax", make(POD, lambda d: d["metadata"].update(labels={"app": "-web"})),
     ['metadata.labels.app: "-web" must be empty or consist of alphanumerics, \'-\', \'_\' or \'.\', '
      "starting and ending with an alphanumeric"]),
    ("label value number", make(POD, lambda d: d["metadata"].update(labels={"v": 2})),
     ["metadata.labels.v: must be a string, not a number (2); quote it"]),
    ("label value empty ok, prefixed key ok",
     make(POD, lambda d: d["metadata"].update(labels={"example.com/tier": ""})), []),
    # service ports
    ("port range", make(SVC, lambda d: sp(d)["ports"][0].update(port=70000)),
     ["spec.ports[0].port: 70000 is not in 1..65535"]),
    ("port not a number", make(SVC, lambda d: sp(d)["ports"][0].update(port="80")),
     ['spec.ports[0].port: must be an integer, not "80"']),
    ("protocol", make(SVC, lambda d: sp(d)["ports"][0].update(protocol="tcp")),
     ['spec.ports[0].protocol: "tcp" is not one of TCP, UDP, SCTP']),
    ("target port name syntax", make(SVC, lambda d: sp(d)["ports"][0].update(targetPort="HTTP")),
     ['spec.ports[0].targetPort: "HTTP" must consist of lowercase letters, digits and \'-\' (not at either end, never \'--\')']),
    ("target port number", make(SVC, lambda d: sp(d)["ports"][0].update(targetPort=0)),
     ["spec.ports[0].targetPort: 0 is not in 1..65535"]),
    ("names required with 2 ports", make(SVC, lambda d: sp(d).update(ports=[{"port": 80}, {"port": 81}])),
     ["spec.ports[0].name: is required when the Service has more than one port",
      "spec.ports[1].name: is required when the Service has more than one port"]),
    ("names unique", make(SVC, lambda d: sp(d).update(ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}])),
     ['spec.ports[1].name: "a" is used by another port']),
    ("one unnamed port ok", make(SVC, lambda d: sp(d).update(ports=[{"port": 80}])), []),
    ("ports required", make(SVC, lambda d: sp(d).pop("ports")),
     ["spec.ports: is required (at least one port), unless the Service is headless (clusterIP: None)"]),
    ("headless needs no ports", make(SVC, lambda d: (sp(d).pop("ports"), sp(d).update(clusterIP="None"))), []),
    ("nodePort only with NodePort", make(SVC, lambda d: sp(d)["ports"][0].update(nodePort=30080)),
     ["spec.ports[0].nodePort: may only be set when type is NodePort or LoadBalancer"]),
    ("nodePort range", make(SVC, lambda d: (sp(d).update(type="NodePort"), sp(d)["ports"][0].update(nodePort=80))),
     ["spec.ports[0].nodePort: 80 is not in 30000..32767"]),
    ("headless NodePort", make(SVC, lambda d: sp(d).update(type="NodePort", clusterIP="None")),
     ['spec.clusterIP: "None" (headless) is not allowed for type NodePort']),
    ("type", make(SVC, lambda d: sp(d).update(type="Cluster")),
     ['spec.type: "Cluster" is not one of ClusterIP, NodePort, LoadBalancer, ExternalName']),
    ("ExternalName needs externalName", make(SVC, lambda d: sp(d).update(type="ExternalName")),
     ["spec.externalName: is required"]),
    ("ExternalName without clusterIP",
     make(SVC, lambda d: sp(d).update(type="ExternalName", externalName="db.example.com", clusterIP="10.96.0.9")),
     ["spec.clusterIP: must not be set for type ExternalName"]),
    ("ExternalName ok", make(SVC, lambda d: sp(d).update(type="ExternalName", externalName="db.example.com.")), []),
    ("clusterIP syntax", make(SVC, lambda d: sp(d).update(clusterIP="10.96.0.300")),
     ['spec.clusterIP: "10.96.0.300" is not a valid IP address']),
    ("dual stack needs a policy", make(SVC, lambda d: sp(d).update(ipFamilies=["IPv4", "IPv6"])),
     ["spec.ipFamilyPolicy: must be PreferDualStack or RequireDualStack for two IP families"]),
    ("ip family names", make(SVC, lambda d: sp(d).update(ipFamilies=["ipv4"])),
     ['spec.ipFamilies[0]: "ipv4" is not one of IPv4, IPv6']),
    ("affinity timeout needs ClientIP",
     make(SVC, lambda d: sp(d).update(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})),
     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: may only be set when sessionAffinity is ClientIP"]),
    ("affinity timeout range",
     make(SVC, lambda d: sp(d).update(sessionAffinity="ClientIP",
                                      sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}})),
     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is not in 1..86400"]),
    ("LoadBalancer headless", make(SVC, lambda d: sp(d).update(type="LoadBalancer", clusterIP="None")),
     ['spec.clusterIP: "None" (headless) is not allowed for type LoadBalancer']),
    # pods
    ("containers required", make(POD, lambda d: sp(d).update(containers=[])),
     ["spec.containers: must not be empty"]),
    ("container port", make(POD, lambda d: sp(d)["containers"][0]["ports"][0].update(containerPort=0)),
     ["spec.containers[0].ports[0].containerPort: 0 is not in 1..65535"]),
    ("container port name", make(POD, lambda d: sp(d)["containers"][0]["ports"][0].update(name="1234")),
     ['spec.containers[0].ports[0].name: "1234" must contain at least one letter']),
    ("dnsPolicy", make(POD, lambda d: sp(d).update(dnsPolicy="Cluster")),
     ['spec.dnsPolicy: "Cluster" is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None']),
    ("dnsPolicy None needs nameservers", make(POD, lambda d: sp(d).update(dnsPolicy="None")),
     ["spec.dnsConfig.nameservers: must list at least one nameserver when dnsPolicy is None"]),
    ("hostname", make(POD, lambda d: sp(d).update(hostname="a.b")),
     ['spec.hostname: "a.b" is not a valid DNS-1123 label (lowercase letters, digits and \'-\', '
      "starting and ending with a letter or digit, at most 63 characters)"]),
    # deployments
    ("selector must match template", make(DEPLOY, lambda d: sp(d)["template"]["metadata"].update(labels={"app": "api"})),
     ['spec.template.metadata.labels: {"app": "api"} do not match spec.selector (app=web)']),
    ("selector required", make(DEPLOY, lambda d: sp(d).pop("selector")), ["spec.selector: is required"]),
    ("empty selector", make(DEPLOY, lambda d: sp(d).update(selector={})),
     ["spec.selector: must not be empty (it would select every pod)"]),
    ("replicas", make(DEPLOY, lambda d: sp(d).update(replicas=-1)), ["spec.replicas: -1 is not >= 0"]),
    ("In needs values", make(DEPLOY, lambda d: sp(d)["selector"].update(matchExpressions=[{"key": "app", "operator": "In"}])),
     ["spec.selector.matchExpressions[0].values: must be non-empty when operator is In"]),
    ("Exists takes no values",
     make(DEPLOY, lambda d: sp(d)["selector"].update(matchExpressions=[{"key": "app", "operator": "Exists", "values": ["x"]}])),
     ["spec.selector.matchExpressions[0].values: must be empty when operator is Exists"]),
    ("operator", make(DEPLOY, lambda d: sp(d)["selector"].update(matchExpressions=[{"key": "app", "operator": "in", "values": ["web"]}])),
     ['spec.selector.matchExpressions[0].operator: "in" is not one of In, NotIn, Exists, DoesNotExist']),
    ("template pod spec", make(DEPLOY, lambda d: sp(d)["template"]["spec"]["containers"][0].pop("image")),
     ["spec.template.spec.containers[0].image: is required"]),
    # network policies
    ("endPort with named port",
     make(NETPOL, lambda d: sp(d)["ingress"][0].update(ports=[{"port": "http", "endPort": 90}])),
     ['spec.ingress[0].ports[0].endPort: may only be set with a numeric port, not the named port "http"']),
    ("endPort >= port", make(NETPOL, lambda d: sp(d)["ingress"][0].update(ports=[{"port": 100, "endPort": 90}])),
     ["spec.ingress[0].ports[0].endPort: 90 must be greater than or equal to port (100)"]),
    ("endPort alone", make(NETPOL, lambda d: sp(d)["ingress"][0].update(ports=[{"endPort": 90}])),
     ["spec.ingress[0].ports[0].endPort: may only be set together with a numeric port"]),
    ("endPort range ok", make(NETPOL, lambda d: sp(d)["ingress"][0].update(ports=[{"port": 80, "endPort": 90}])), []),
    ("peer needs something", make(NETPOL, lambda d: sp(d)["ingress"][0].update(**{"from": [{}]})),
     ["spec.ingress[0].from[0]: must set podSelector, namespaceSelector or ipBlock"]),
    ("ipBlock exclusive",
     make(NETPOL, lambda d: sp(d)["ingress"][0].update(**{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]})),
     ["spec.ingress[0].from[0]: ipBlock may not be combined with podSelector or namespaceSelector"]),
    ("ipBlock cidr", make(NETPOL, lambda d: sp(d).update(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}])),
     ['spec.egress[0].to[0].ipBlock.cidr: "10.0.0.0" is not a CIDR (expected address/prefix, e.g. 10.0.0.0/16)']),
    ("except inside cidr",
     make(NETPOL, lambda d: sp(d).update(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}])),
     ['spec.egress[0].to[0].ipBlock.except[0]: "11.0.0.0/16" must be a strict subset of cidr 10.0.0.0/8']),
    ("except family",
     make(NETPOL, lambda d: sp(d).update(egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["fd00::/8"]}}]}])),
     ['spec.egress[0].to[0].ipBlock.except[0]: "fd00::/8" is not in the same IP family as cidr 10.0.0.0/8']),
    ("policyTypes", make(NETPOL, lambda d: sp(d).update(policyTypes=["ingress"])),
     ['spec.policyTypes[0]: "ingress" is not one of Ingress, Egress']),
    # ip pools
    ("pool cidr host bits", make(POOL, lambda d: sp(d).update(cidr="10.244.1.0/16")),
     ['spec.cidr: "10.244.1.0/16" has host bits set (did you mean 10.244.0.0/16?)']),
    ("pool cidr required", make(POOL, lambda d: sp(d).pop("cidr")), ["spec.cidr: is required"]),
    ("pool for load balancers", make(POOL, lambda d: sp(d).update(allowedUses=["LoadBalancer"])), []),
    ("pool uses", make(POOL, lambda d: sp(d).update(allowedUses=["Workload", "Pods"])),
     ['spec.allowedUses[1]: "Pods" is not one of Workload, Tunnel, LoadBalancer']),
    ("pool LoadBalancer alone", make(POOL, lambda d: sp(d).update(allowedUses=["Workload", "LoadBalancer"])),
     ["spec.allowedUses: LoadBalancer may not be combined with other uses (as Calico refuses it)"]),
    ("v4 block size range", make(POOL, lambda d: sp(d).update(blockSize=19)),
     ["spec.blockSize: 19 is not in 20..32"]),
    ("v6 block size range", make(POOL, lambda d: sp(d).update(cidr="fd00::/56", blockSize=64)),
     ["spec.blockSize: 64 is not in 116..128"]),
    ("block larger than pool", make(POOL, lambda d: sp(d).update(cidr="10.0.0.0/24", blockSize=22)),
     ["spec.blockSize: 22 is larger than the pool itself (/24); use a value >= 24"]),
    ("natOutgoing bool", make(POOL, lambda d: sp(d).update(natOutgoing="yes")),
     ['spec.natOutgoing: must be true or false, not "yes"']),
    ("nodeSelector", make(POOL, lambda d: sp(d).update(nodeSelector="zone in (a")),
     ['spec.nodeSelector: "zone in (a" is not a valid selector: bad selector term \'zone in (a\': expected ( values )']),
    ("calico nodeSelector", make(POOL, lambda d: sp(d).update(nodeSelector="has(zone) && rack == 'r1'")), []),
    ("calico nodeSelector or", make(POOL, lambda d: sp(d).update(nodeSelector="has(a) || has(b)")),
     ['spec.nodeSelector: "has(a) || has(b)" is not a valid selector: \'||\' is not supported in a node selector']),
    # a node's own AS (Calico's Node spec.bgp.asNumber, issue 21)
    ("node AS", make(NODE, lambda d: sp(d).update(bgp={"asNumber": 65002})), []),
    ("node AS range", make(NODE, lambda d: sp(d).update(bgp={"asNumber": 0})),
     ["spec.bgp.asNumber: 0 is not in 1..4294967295"]),
    # endpoint slices
    ("slice address family", make(SLICE, lambda d: d["endpoints"][0].update(addresses=["fd00::1"])),
     ['endpoints[0].addresses[0]: "fd00::1" is not an IPv4 address']),
    ("slice address type", make(SLICE, lambda d: d.update(addressType="IP")),
     ['addressType: "IP" is not one of IPv4, IPv6, FQDN']),
    ("slice zone and hints", make(SLICE, lambda d: d["endpoints"][0].update(
        zone="a", hints={"forZones": [{"name": "a"}], "forNodes": [{"name": "node-1"}]})), []),
    ("slice hints", make(SLICE, lambda d: d["endpoints"][0].update(
        zone="a b", hints={"forZones": [{"name": "a"}, {"name": "a"}, {}],
                           "forNodes": [{"name": f"n{i}"} for i in range(9)]})),
     ['endpoints[0].zone: "a b" must be empty or consist of alphanumerics, \'-\', \'_\' or \'.\', '
      "starting and ending with an alphanumeric",
      'endpoints[0].hints.forZones[1].name: "a" is listed twice',
      "endpoints[0].hints.forZones[2].name: is required",
      "endpoints[0].hints.forNodes: has 9 entries, at most 8"]),
    # fixed addresses: podnet's annotation, and Calico's
    ("ipAddrs not JSON", make(POD, lambda d: d["metadata"].update(annotations={"podnet.io/ipAddrs": "10.244.1.5"})),
     ['metadata.annotations[podnet.io/ipAddrs]: not JSON; write a list such as ["10.244.1.5", "fd00:10:244::5"]']),
    ("ipAddrs not an IP", make(POD, lambda d: d["metadata"].update(
        annotations={"cni.projectcalico.org/ipAddrs": '["10.244.1.5", "fd00::x"]'})),
     ["metadata.annotations[cni.projectcalico.org/ipAddrs]: 'fd00::x' is not an IP address"]),
    ("ipAddrs two of a family", make(POD, lambda d: d["metadata"].update(
        annotations={"podnet.io/ipAddrs": '["10.244.1.5", "10.244.1.6"]'})),
     ["metadata.annotations[podnet.io/ipAddrs]: two IPv4 addresses (10.244.1.5, 10.244.1.6); "
      "a pod gets one address per family"]),
    ("ipAddrs empty", make(POD, lambda d: d["metadata"].update(annotations={"podnet.io/ipAddrs": "[]"})),
     ["metadata.annotations[podnet.io/ipAddrs]: expected a non-empty JSON list of IP addresses"]),
    ("ipAddrs on 3 replicas", make(DEPLOY, lambda d: sp(d)["template"]["metadata"].update(
        annotations={"podnet.io/ipAddrs": '["10.244.1.5"]'})),
     ["spec.replicas: 3 replicas of a template with fixed addresses (ipAddrs annotation): only one pod "
      "can hold an address"]),
    ("ipAddrs bad in a template", make(DEPLOY, lambda d: sp(d)["template"]["metadata"].update(
        annotations={"podnet.io/ipAddrs": '"10.244.1.5"'})),
     ["spec.template.metadata.annotations[podnet.io/ipAddrs]: expected a non-empty JSON list of IP addresses"]),
    # shapes never crash
    ("spec not a mapping", make(SVC, lambda d: d.update(spec=[1])), ["spec: must be an object, not a list"]),
    ("ports not a list", make(SVC, lambda d: sp(d).update(ports={"port": 80})),
     ["spec.ports: must be a list, not an object"]),
]


@pytest.mark.parametrize("name,obj,expected", CASES, ids=[c[0] for c in CASES])
def test_validation_message(name, obj, expected):
    assert errors(obj) == expected


def test_messages_carry_file_doc_kind_namespace_name():
    text = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: podnet/serve}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 70000}]
---
apiVersion: podnet.io/v1
kind: IPPool
metadata: {name: pool}
spec: {cidr: 10.0.0.0/8, blockSize: 33}
"""
    with pytest.raises(InvalidObjects) as ei:
        validate_manifests(load_text(text, "web.yaml"))
    assert ei.value.lines == [
        "web.yaml doc 2 Service default/web: spec.ports[0].port: 70000 is not in 1..65535",
        "web.yaml doc 3 IPPool pool: spec.blockSize: 33 is not in 20..32",
    ]


def test_list_items_are_named_by_index():
    text = """apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: ok}}
- {apiVersion: v1, kind: Namespace, metadata: {name: Bad}}
"""
    with pytest.raises(InvalidObjects) as ei:
        validate_manifests(load_text(text, "ns.yaml"))
    assert len(ei.value.lines) == 1
    assert ei.value.lines[0].startswith('ns.yaml doc 1 items[1] Namespace Bad: metadata.name: "Bad" is not')


def test_every_problem_is_reported_not_only_the_first():
    d = make(SVC, lambda d: sp(d).update(ports=[{"port": 0, "protocol": "X"}], type="Y"))
    assert errors(d) == ['spec.type: "Y" is not one of ClusterIP, NodePort, LoadBalancer, ExternalName',
                         "spec.ports[0].port: 0 is not in 1..65535",
                         'spec.ports[0].protocol: "X" is not one of TCP, UDP, SCTP']
