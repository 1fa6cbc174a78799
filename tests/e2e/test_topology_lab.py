"""trafficDistribution in a 3-node lab over 2 zones (`podnet up --zones 2`: n1 and n3 in
zone a, n2 in zone b), by real connections from pods: PreferSameZone (and PreferClose)
reach only the client's zone's endpoints, PreferSameNode only its node's, and a zone
without endpoints reaches every endpoint; a Service without the field reaches all. The
`topology-mode: Auto` annotation hints by each zone's CPU: zone a (two nodes) gets a
zone-b endpoint when b holds more than its share.

One lab for the module (always torn down).
"""
from __future__ import annotations

import json
import secrets
import socket
import time

import pytest

from lablib import NETNS_ANNOTATION, Lab
from podnet.dataplane.net.sysctl import call_in_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 8080


def _pod(name: str, node: str, app: str) -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  nodeName: {node}
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
"""


def _svc(name: str, app: str, distribution: str = "", annotations: str = "") -> str:
    field = f"\n  trafficDistribution: {distribution}" if distribution else ""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}{", annotations: {" + annotations + "}" if annotations else ""}}}
spec:
  selector: {{app: {app}}}{field}
  ports: [{{port: 80, targetPort: {PORT}}}]
"""


MANIFESTS = "".join([
    _pod("w1", "n1", "web"), _pod("w2", "n2", "web"), _pod("w3", "n3", "web"),
    _pod("b1", "n2", "bonly"), _pod("b2", "n2", "bonly"),
    _pod("c1", "n1", "client"), _pod("c3", "n3", "client"),
    _svc("zone", "web", "PreferSameZone"), _svc("close", "web", "PreferClose"),
    _svc("node", "web", "PreferSameNode"), _svc("plain", "web"),
    _svc("bzone", "bonly", "PreferSameZone"),
    _pod("x1", "n1", "auto"), _pod("x2", "n2", "auto"), _pod("x3", "n2", "auto"), _pod("c2", "n2", "client"),
    _svc("auto", "auto", "PreferSameNode", annotations="service.kubernetes.io/topology-mode: Auto"),
])


@pytest.fixture(scope="module")
def lab(lab_home):
    lab = Lab("topo" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "3", "--zones", "2")
        lab.podnet("apply", "-f", "-", input=MANIFESTS)
        lab.wait_pods(11)
        yield lab
    finally:
        lab.down()


def answers(lab: Lab, client: str, service: str, n: int = 40) -> set[str]:
    """The pods (names) that answer `n` connections from `client` to the Service."""
    s = lab.store()
    try:
        vip = s.get("Service", "default", service).spec["clusterIP"]
    finally:
        s.close()
    netns = next(p for p in lab.pods() if p.name == client).annotations[NETNS_ANNOTATION]

    def one() -> str:
        try:
            with socket.create_connection((vip, 80), timeout=0.5) as c:
                c.send(b"probe\n")
                return c.recv(4096).decode().split(" ")[0].split("/")[-1]
        except OSError as e:
            return f"ERROR {e}"
    return set(call_in_netns(netns, lambda: [one() for _ in range(n)]))


def settled(lab: Lab, client: str, service: str, want: set[str], timeout: float = 20.0) -> set[str]:
    """What answers once the controller and the agents caught up (the set stops being
    something else); then 40 more connections must agree."""
    deadline = time.monotonic() + timeout
    got = answers(lab, client, service)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = answers(lab, client, service)
    return got | answers(lab, client, service) if got == want else got


def test_nodes_carry_their_zones_and_slices_their_hints(lab):
    s = lab.store()
    try:
        zones = {n.name: n.labels.get("topology.kubernetes.io/zone") for n in s.list("Node").items}
        assert zones == {"n1": "a", "n2": "b", "n3": "a"}
        deadline = time.monotonic() + 10
        while True:
            eps = [e for sl in s.list("EndpointSlice", "default").items
                   if sl.labels.get("kubernetes.io/service-name") == "node" for e in sl.raw["endpoints"]]
            got = {(e["nodeName"], e.get("zone"), json.dumps(e.get("hints"), sort_keys=True)) for e in eps}
            want = {(n, z, json.dumps({"forZones": [{"name": z}], "forNodes": [{"name": n}]}, sort_keys=True))
                    for n, z in zones.items()}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == want
    finally:
        s.close()


def test_prefer_same_zone_reaches_only_the_clients_zone(lab):
    assert settled(lab, "c1", "zone", {"w1", "w3"}) == {"w1", "w3"}
    assert settled(lab, "c3", "close", {"w1", "w3"}) == {"w1", "w3"}  # the older name


def test_prefer_same_node_reaches_only_the_clients_node(lab):
    assert settled(lab, "c1", "node", {"w1"}) == {"w1"}
    assert settled(lab, "c3", "node", {"w3"}) == {"w3"}


def test_a_zone_without_endpoints_reaches_all_and_no_field_means_all(lab):
    assert settled(lab, "c1", "bzone", {"b1", "b2"}) == {"b1", "b2"}
    assert settled(lab, "c1", "plain", {"w1", "w2", "w3"}) == {"w1", "w2", "w3"}


def test_topology_mode_auto_balances_zones_by_cpu(lab):
    """Every node reports the same CPUs, so zone a (n1, n3) should serve 2 of the 3
    endpoints but holds only x1: zone b gives it one of x2/x3 (the annotation wins over the
    Service's PreferSameNode). Clients in a reach x1 and that one; n2's client the other."""
    s = lab.store()
    try:
        cpus = {n.name: (n.status.get("allocatable") or {}).get("cpu") for n in s.list("Node").items}
        assert len(set(cpus.values())) == 1 and None not in cpus.values(), cpus
        deadline = time.monotonic() + 10
        while True:
            eps = [e for sl in s.list("EndpointSlice", "default").items
                   if sl.labels.get("kubernetes.io/service-name") == "auto" for e in sl.raw["endpoints"]]
            hinted = {e["targetRef"]["name"]: e.get("hints") for e in eps}
            for_a = sorted(n for n, h in hinted.items() if h == {"forZones": [{"name": "a"}]})
            for_b = sorted(n for n, h in hinted.items() if h == {"forZones": [{"name": "b"}]})
            if (len(for_a), len(for_b)) == (2, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        s.close()
    assert len(for_a) == 2 and "x1" in for_a and set(for_a + for_b) == {"x1", "x2", "x3"}, hinted
    assert settled(lab, "c1", "auto", set(for_a)) == set(for_a)
    assert settled(lab, "c3", "auto", set(for_a)) == set(for_a)
    assert settled(lab, "c2", "auto", set(for_b)) == set(for_b)
