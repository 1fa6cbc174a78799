"""`podnet trace` on a real lab running the demo: for each path the prediction equals what
the kernel shows (nft trace of a real packet, ip route get), with no MISMATCH: pod to
pod across nodes, pod to Service (IPv4 and IPv6), pod to the outside world (NAT
outgoing; by address and by the outside DNS name), denied by a NetworkPolicy and allowed again. Direct routing and VXLAN."""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
import yaml

from lablib import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow]
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


NODE_PORT = """apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ipFamilyPolicy: PreferDualStack
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
"""


def _slices(lab: Lab, service: str = "web") -> None:
    """The EndpointSlice controller is another part; when the lab has not written the
    Service's slices within a few seconds, write them from the pods as it would."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        s = lab.store()
        try:
            slices = [x for x in s.list("EndpointSlice").items if x.namespace == "shop"
                      and x.labels.get("kubernetes.io/service-name") == service]
        finally:
            s.close()
        if sum(len(x.raw.get("endpoints") or []) for x in slices) >= 6:
            return
        time.sleep(0.2)
    pods = [p for p in lab.pods() if p.namespace == "shop" and p.labels.get("app") == "web"]
    docs = [{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{service}-trace-ipv{fam}", "namespace": "shop",
                          "labels": {"kubernetes.io/service-name": service}},
             "addressType": f"IPv{fam}", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
             "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": p.node_name,
                            "targetRef": {"kind": "Pod", "namespace": "shop", "name": p.name}}
                           for p in pods for ip in p.pod_ips if (":" in ip) == (fam == 6)]}
            for fam in (4, 6)]
    lab.podnet("apply", "-f", "-", input=yaml.safe_dump_all(docs))


@pytest.fixture(scope="module", params=["none", "vxlan"])
def demo(request, lab_home):
    lab = Lab("tr" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--dual-stack", "--encap", request.param)
        for f in ("00-namespaces.yaml", "10-ippools.yaml", "20-web.yaml", "30-clients.yaml"):
            lab.podnet("apply", "-f", str(DEMO / f))
        lab.wait_pods(3, namespace="shop", app="web")
        lab.wait_pods(1, namespace="shop", role="client")
        _slices(lab)
        yield lab
    finally:
        lab.down()


def trace(lab: Lab, *args: str) -> dict:
    cp = lab.podnet("trace", "--lab", lab.name, *args, "-o", "json", check=False)
    assert cp.returncode in (0, 3), cp.stderr
    return json.loads(cp.stdout)


def agreed(t: dict) -> dict:
    c = t["confirmation"]
    bad = [x["line"] for x in c["checks"] if not x["ok"]]
    assert c["ok"] and not bad, "\n".join(bad)
    return t


def steps(t: dict, direction: str = "request") -> list[dict]:
    return [s for h in t[direction]["hops"] for s in h["steps"]]


def until(fn, timeout: float = 10.0):
    """Policy changes reach the kernel through the agents: retry until they have."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_pod_to_pod_across_nodes(demo):
    pods = {p.name: p for p in demo.pods() if p.namespace == "shop"}
    client = pods["client"]
    other = next(p for p in pods.values() if p.labels.get("app") == "web" and p.node_name != client.node_name)
    t = agreed(trace(demo, "-n", "shop", "client", f"{other.name}:8080"))
    assert not any(c["what"].endswith((" A", " AAAA")) for c in t["confirmation"]["checks"])  # no DNS asked
    assert t["request"]["outcome"] == "delivered" and t["reply"]["outcome"] == "delivered"
    kinds = [h["kind"] for h in t["request"]["hops"]]
    assert kinds == ["pod", "node", "underlay", "node", "pod"]
    last = t["request"]["hops"][-1]["headers"]["l3"]
    assert last["src"] in client.pod_ips  # no NAT between pods
    t6 = agreed(trace(demo, "-n", "shop", "client", f"shop/{other.name}:8080", "-6"))
    assert t6["family"] == 6


@pytest.mark.parametrize("args", [("web",), ("web.shop.svc.cluster.local:80", "-6")])
def test_pod_to_service(demo, args):
    # until: cluster DNS (its own pods) may still be starting when the first name is asked
    t = until(lambda: agreed(trace(demo, "-n", "shop", "client", *args)))
    dnat = [s for s in steps(t) if s["kind"] == "dnat"]
    assert len(dnat) == 1 and len(t["endpoints"]) == 3
    assert any(c["where"] == "DNS in the source pod" and c["ok"] for c in t["confirmation"]["checks"])
    assert dnat[0]["data"]["to"] in dnat[0]["data"]["candidates"]
    assert any(s["kind"] == "undnat" for s in steps(t, "reply"))


def test_dns_query_to_the_kube_dns_service(demo):
    # The demo's DNS step: a UDP query to the kube-dns VIP, DNATed to a DNS pod and back.
    t = until(lambda: agreed(trace(demo, "-n", "shop", "client", "kube-dns.kube-system:53/udp")))
    dnat = [s for s in steps(t) if s["kind"] == "dnat"]
    assert len(dnat) == 1 and dnat[0]["data"]["to"] in dnat[0]["data"]["candidates"]
    assert t["request"]["hops"][0]["headers"]["l4"]["proto"].upper() == "UDP"
    assert t["request"]["outcome"] == "delivered" and t["reply"]["outcome"] == "delivered"


@pytest.mark.parametrize("args", [("203.0.113.10:80",), ("www.example.test", "-6")])
def test_pod_to_outside_with_nat_outgoing(demo, args):
    t = until(lambda: agreed(trace(demo, "-n", "shop", "client", *args)))
    snat = [s for s in steps(t) if s["kind"] == "snat"]
    assert len(snat) == 1 and snat[0]["data"]["to"].startswith(("198.18.0.1", "fd00:198:18::1"))
    assert t["request"]["hops"][-1]["headers"]["l3"]["src"] == snat[0]["data"]["to"]
    assert t["reply"]["outcome"] == "delivered"


def test_pod_to_node_port_on_the_other_node(demo):
    demo.podnet("apply", "-f", "-", input=NODE_PORT)
    _slices(demo, "web-np")
    client = next(p for p in demo.pods("shop") if p.name == "client")
    other = "198.18.0.12" if client.node_name == "n1" else "198.18.0.11"
    t = until(lambda: agreed(trace(demo, "-n", "shop", "client", f"{other}:30080")))
    hops = t["request"]["hops"]
    at = next(h for h in hops if any(s["kind"] == "dnat" for s in h["steps"]))
    assert at["kind"] == "node" and at["name"] != client.node_name
    assert t["reply"]["outcome"] == "delivered"


LOCAL_SERVICES = """apiVersion: v1
kind: Service
metadata: {name: web-local, namespace: shop}
spec:
  selector: {app: web}
  internalTrafficPolicy: Local
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: shop}
spec:
  internalTrafficPolicy: Local
  ports: [{name: http, port: 80}]
"""


def test_internal_traffic_policy_local(demo):
    """iTP Local: the client's node DNATs only to its own endpoints; a Service whose only
    endpoint is on another node is dropped there, not rejected. Prediction == kernel."""
    demo.podnet("apply", "-f", "-", input=LOCAL_SERVICES)
    _slices(demo, "web-local")
    pods = [p for p in demo.pods("shop")]
    client = next(p for p in pods if p.name == "client")
    far = next(p for p in pods if p.labels.get("app") == "web" and p.node_name != client.node_name)
    demo.podnet("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "far-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "far"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [far.pod_ips[0]], "conditions": {"ready": True}, "nodeName": far.node_name}]}))
    local_ips = {ip for p in pods if p.labels.get("app") == "web" and p.node_name == client.node_name
                 for ip in p.pod_ips}

    def local() -> dict:
        t = agreed(trace(demo, "-n", "shop", "client", "web-local"))
        dnat = [s for s in steps(t) if s["kind"] == "dnat"]
        assert len(dnat) == 1 and {c.rsplit(":", 1)[0] for c in dnat[0]["data"]["candidates"]} <= local_ips
        assert t["request"]["outcome"] == "delivered"
        return t
    if local_ips:
        until(local)

    def dropped() -> dict:
        t = agreed(trace(demo, "-n", "shop", "client", "far"))
        assert t["request"]["outcome"] == "dropped"
        return t
    until(dropped)
    demo.podnet("delete", "service", "web-local", "far", "-n", "shop")


def test_denied_by_policy_then_allowed(demo):
    demo.podnet("apply", "-f", str(DEMO / "40-deny-web.yaml"))

    def denied() -> dict:
        t = agreed(trace(demo, "-n", "shop", "client", "web"))
        assert t["verdict"] == "denied" and t["request"]["outcome"] == "dropped"
        return t
    until(denied)
    demo.podnet("apply", "-f", str(DEMO / "50-allow-client.yaml"))

    def allowed() -> dict:
        t = agreed(trace(demo, "-n", "shop", "client", "web"))
        assert t["verdict"] == "allowed"
        rules = [s["data"]["rule"] for s in steps(t) if s["kind"] == "policy"]
        assert "shop/web-allow-client/ingress/0" in rules
        return t
    until(allowed)
    t = until(lambda: agreed(trace(demo, "-n", "batch", "worker", "web.shop")))
    assert t["verdict"] == "denied"


def test_pod_to_node_ports_host_protection(demo):
    """Host protection (issue 12 §1), predicted and seen by the kernel alike: a pod's
    connection to an agent's metrics port is rejected on its own node (input) and on the
    way to the other node (before NAT outgoing); the API server's port is delivered."""
    from podnet.lab.up import AGENT_METRICS_PORT
    client = next(p for p in demo.pods("shop") if p.name == "client")
    own, other = (("198.18.0.11", "198.18.0.12") if client.node_name == "n1"
                  else ("198.18.0.12", "198.18.0.11"))
    for ip in (own, other):
        t = agreed(trace(demo, "-n", "shop", "client", f"{ip}:{AGENT_METRICS_PORT}"))
        assert t["request"]["outcome"] == "rejected", t["request"]["why"]
        refused = [s for s in steps(t) if s["kind"] == "reject"]
        assert refused and refused[0]["data"]["chain"] == ("input" if ip == own else "pod-to-node")
    t = agreed(trace(demo, "-n", "shop", "client", "198.18.0.11:6443"))
    assert t["request"]["outcome"] == "delivered" and t["reply"]["outcome"] == "delivered"
