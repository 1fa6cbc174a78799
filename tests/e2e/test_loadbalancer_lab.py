"""type LoadBalancer in a 2-node dual-stack lab (issue 16 §2), by real connections from
the outside world: the load-balancer controller hands out addresses from LoadBalancer
IPPools (IPv4 and IPv6) into status.loadBalancer.ingress, the router learns a route per
address to the nodes, and the nodes' proxies answer it: externalTrafficPolicy Cluster
reaches every endpoint masqueraded, Local keeps the client's address and the router sends
it only to the node with the endpoint; loadBalancerSourceRanges let only their sources in;
another loadBalancerClass gets nothing; allocateLoadBalancerNodePorts: false, no nodePort;
each node answers kube-proxy's health check on the healthCheckNodePort.

One lab for the module (always torn down); tests run in file order on its state.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import subprocess
import time
from collections import Counter

import pytest

from lablib import NETNS_ANNOTATION, Lab
from podnet.dataplane.net.sysctl import call_in_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 8080

MANIFESTS = f"""apiVersion: podnet.io/v1
kind: IPPool
metadata: {{name: lb-v4}}
spec: {{cidr: 198.51.100.0/28, allowedUses: [LoadBalancer]}}
---
apiVersion: podnet.io/v1
kind: IPPool
metadata: {{name: lb-v6}}
spec: {{cidr: "fd00:198:51::/124", allowedUses: [LoadBalancer]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: w1, labels: {{app: web, loc: "yes"}}}}
spec:
  nodeName: n1
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: w2, labels: {{app: web}}}}
spec:
  nodeName: n2
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: c2, labels: {{app: client}}}}
spec:
  nodeName: n2
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb-local}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  allocateLoadBalancerNodePorts: false
  selector: {{loc: "yes"}}
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb-deny}}
spec:
  type: LoadBalancer
  loadBalancerSourceRanges: [192.0.2.0/24]
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb-other}}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/lb
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: {PORT}}}]
"""


@pytest.fixture(scope="module")
def lab(lab_home):
    lab = Lab("sv" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack")
        lab.podnet("apply", "-f", "-", input=MANIFESTS)
        lab.wait_pods(3)
        yield lab
    finally:
        lab.down()


def service(lab: Lab, name: str):
    s = lab.store()
    try:
        return s.get("Service", "default", name)
    finally:
        s.close()


def ingress(lab: Lab, name: str, want: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lb = service(lab, name).status.get("loadBalancer") or {}
        ips = [i["ip"] for i in lb.get("ingress") or []]
        if len(ips) >= want or time.monotonic() > deadline:
            return ips
        time.sleep(0.2)


def answers(netns: str, ip: str, n: int, timeout: float = 1.0) -> list[str]:
    """`ns/name <client address the pod saw>` per connection, or `ERROR: ...`."""
    def one() -> str:
        try:
            with socket.create_connection((ip, 80), timeout=timeout) as s:
                s.send(b"probe\n")
                return s.recv(4096).decode().strip()
        except OSError as e:
            return f"ERROR: {type(e).__name__}"
    return call_in_netns(netns, lambda: [one() for _ in range(n)])


def until_answers(netns: str, ip: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while answers(netns, ip, 1, 0.5)[0].startswith("ERROR"):
        assert time.monotonic() < deadline, f"{ip} never answered from {netns}"
        time.sleep(0.2)


def out_client(lab: Lab, ip: str) -> str:
    r = subprocess.run(["ip", "-n", f"pn-{lab.name}-out", "-o", "route", "get", ip],
                       capture_output=True, text=True, check=True).stdout.split()
    return r[r.index("src") + 1]


def test_addresses_from_the_load_balancer_pools_per_family(lab):
    v4, v6 = ingress(lab, "lb", 2)
    assert ipaddress.ip_address(v4) in ipaddress.ip_network("198.51.100.0/28")
    assert ipaddress.ip_address(v6) in ipaddress.ip_network("fd00:198:51::/124")
    assert len(ingress(lab, "lb-local", 1)) == 1
    # another class is another controller's: no address from podnet
    assert ingress(lab, "lb-other", 1, timeout=2) == []
    # nodePorts: allocated unless allocateLoadBalancerNodePorts is false
    assert service(lab, "lb").spec["ports"][0].get("nodePort")
    assert "nodePort" not in service(lab, "lb-local").spec["ports"][0]


def test_cluster_policy_from_the_outside_world_reaches_every_endpoint(lab):
    out = f"pn-{lab.name}-out"
    for ip in ingress(lab, "lb", 2):
        until_answers(out, ip)
        got = answers(out, ip, 40)
        assert {g.split()[0] for g in got} == {"default/w1", "default/w2"}, Counter(got)
        # masqueraded by the node that received it: a node address, never the client's
        assert {g.split()[1] for g in got} <= {"198.18.0.11", "198.18.0.12", "fd00:198:18::11",
                                              "fd00:198:18::12"}, Counter(got)


def test_local_policy_keeps_the_client_address_and_the_router_knows_where(lab):
    [ip] = ingress(lab, "lb-local", 1)
    out, rt = f"pn-{lab.name}-out", f"pn-{lab.name}-rt"
    until_answers(out, ip)
    assert answers(out, ip, 10) == [f"default/w1 {out_client(lab, ip)}"] * 10
    routes = json.loads(subprocess.run(["ip", "-n", rt, "-j", "route", "show", ip], capture_output=True,
                                       text=True, check=True).stdout)
    assert [r.get("gateway") for r in routes] == ["198.18.0.11"], routes  # n1 only: its endpoint
    # a pod's connection is DNATed by its own node, n2, which has no endpoint of a Local
    # Service: kube-proxy installs no external path there and drops it, pods included
    c2 = next(p for p in lab.pods() if p.name == "c2")
    assert answers(c2.annotations[NETNS_ANNOTATION], ip, 2, timeout=0.5) == ["ERROR: TimeoutError"] * 2


def test_health_check_node_port_says_which_node_has_the_endpoint(lab):
    """kube-proxy's health check, served by each node's agent: an outside load balancer
    asks the nodes and sends traffic only to n1, the one with a local endpoint."""
    import urllib.error
    import urllib.request
    hc = service(lab, "lb-local").spec["healthCheckNodePort"]
    assert "healthCheckNodePort" not in service(lab, "lb").spec  # eTP Cluster: none

    def ask(ip: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://{ip}:{hc}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    out = f"pn-{lab.name}-out"
    svc = {"namespace": "default", "name": "lb-local"}
    assert call_in_netns(out, lambda: ask("198.18.0.11")) == (
        200, {"service": svc, "localEndpoints": 1, "serviceProxyHealthy": True})
    assert call_in_netns(out, lambda: ask("198.18.0.12")) == (
        503, {"service": svc, "localEndpoints": 0, "serviceProxyHealthy": True})
    assert call_in_netns(out, lambda: ask("[fd00:198:18::12]"))[0] == 503


def test_source_ranges_keep_other_clients_out(lab):
    [ip] = ingress(lab, "lb-deny", 1)
    out = f"pn-{lab.name}-out"
    # the route is there (the address answers nobody else either): dropped, a timeout
    time.sleep(1.5)
    assert answers(out, ip, 3, timeout=0.5) == ["ERROR: TimeoutError"] * 3
    # let the outside world's client in: it answers
    client = out_client(lab, ip)
    d = service(lab, "lb-deny").to_dict()
    d["spec"]["loadBalancerSourceRanges"] = [f"{client}/32"]
    d["metadata"].pop("resourceVersion", None)
    d.pop("status", None)
    lab.podnet("apply", "-f", "-", input=json.dumps(d))
    until_answers(out, ip)
    got = answers(out, ip, 10)
    assert {g.split()[0] for g in got} <= {"default/w1", "default/w2"}, got


def test_deleting_the_service_frees_its_address_and_route(lab):
    [ip] = ingress(lab, "lb-deny", 1)
    lab.podnet("delete", "service", "lb-deny")
    rt = f"pn-{lab.name}-rt"
    deadline = time.monotonic() + 10
    while subprocess.run(["ip", "-n", rt, "route", "show", ip], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the router still has the route"
        time.sleep(0.2)
