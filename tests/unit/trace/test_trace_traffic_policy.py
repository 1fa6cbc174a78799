"""`podnet trace` predictions for Services with internal/externalTrafficPolicy Local, on
the demo state (client and web-5d8f7-a1 on n1; web-5d8f7-b2, -c3 and worker on n2):
the proxy of the node that DNATs chooses only among its own endpoints (for an eTP-Local
NodePort: only for a client from outside the cluster), drops without
one, and an externalTrafficPolicy Local NodePort keeps the client's address. Golden
text for two of them (tests/golden/trace)."""
from __future__ import annotations

import pytest

import trace_demo_state as demo
from podnet.trace import render
from podnet.trace.path import predict
from podnet.trace.resolve import TraceError, find_pod, parse_dest, resolve
from test_trace_golden import GOLDEN, check

ITP = {"internalTrafficPolicy": "Local"}
ETP = {"externalTrafficPolicy": "Local"}


def run(src: str, dst: str, traffic: dict[str, str], unready: tuple[str, ...] = (),
        endpoint: str | None = None, fam: int = 4):
    d = parse_dest(dst)
    st = demo.state((), True, 30080 if d.port == 30080 else 0, traffic, unready)
    pod = find_pod(st, "shop", src)
    facts = demo.facts("none")
    target = resolve(st, pod.namespace, d.text, fam, facts.outside_names)
    return predict(st, facts, pod, target, d.port, d.proto, fam, endpoint=endpoint, query=d.text)


def _node_of(t) -> set[str]:
    return {e.node for e in t.endpoints}


def test_internal_local_chooses_among_the_clients_node_only():
    t = run("client", "web", ITP)
    assert [e.pod for e in t.endpoints] == ["shop/web-5d8f7-a1"] and t.chosen == t.endpoints[0]
    assert t.request.outcome == "delivered" and t.reply and t.reply.outcome == "delivered"
    dnat = next(h.step("dnat") for h in t.request.hops if h.step("dnat"))
    assert dnat.data["candidates"] == ["10.244.0.3:8080"]
    assert _node_of(run("batch/worker", "web.shop:80", ITP)) == {"n2"}
    assert _node_of(run("client", "web", ITP, fam=6)) == {"n1"}
    with pytest.raises(TraceError, match="not an endpoint"):
        run("client", "web", ITP, endpoint="10.244.0.66")


def test_internal_local_without_an_endpoint_on_the_node_drops_not_rejects():
    t = run("client", "web", ITP, unready=("web-5d8f7-a1",))
    assert t.endpoints == () and t.chosen is None and t.reply is None
    assert (t.request.outcome, len(t.request.hops)) == ("dropped", 2)
    assert t.request.hops[-1].step("drop") and not t.request.hops[-1].step("reject")
    assert any("internalTrafficPolicy Local" in n and "drops" in n for n in t.notes)
    # no endpoint anywhere: still a rejection
    assert run("client", "web", ITP, unready=("web-5d8f7-a1", "web-5d8f7-b2", "web-5d8f7-c3")
               ).request.outcome == "rejected"


def test_external_local_nodeport_keeps_the_source_and_its_clusterip_does_not_care():
    # a pod is not outside the cluster: kube-proxy short-circuits it to every endpoint,
    # its own address kept
    own = run("client", "198.18.0.11:30080", ETP, endpoint="10.244.0.67")
    assert _node_of(own) == {"n1", "n2"}
    assert not any(h.step("snat") for h in own.request.hops)
    assert own.request.hops[-1].headers.l3.src == "10.244.0.2"  # the client's own address
    assert own.reply and own.reply.outcome == "delivered"
    assert any("does not apply to a pod" in n for n in own.notes)
    # to the other node: NAT outgoing on n1 (a node IP is outside the pools), so n2 sees
    # a client from outside the cluster: its own endpoints only, no SNAT
    t = run("client", "198.18.0.12:30080", ETP)
    assert _node_of(t) == {"n2"} and t.request.outcome == "delivered"
    n2 = next(h for h in t.request.hops if h.name == "n2")
    assert n2.step("nosnat") and not n2.step("snat")
    assert t.request.hops[-1].headers.l3.src == "198.18.0.11"
    assert t.reply and t.reply.outcome == "delivered"
    # traffic policy Cluster: the NodePort masquerades, as before
    cluster = run("client", "198.18.0.12:30080", {}, endpoint="10.244.0.66")
    assert any(h.step("snat") for h in cluster.request.hops)
    # the ClusterIP of an externalTrafficPolicy Local Service uses every endpoint
    assert _node_of(run("client", "web", ETP)) == {"n1", "n2"}


def test_external_local_nodeport_without_a_local_endpoint_drops():
    t = run("client", "198.18.0.11:30080", ETP, unready=("web-5d8f7-a1",))
    assert t.request.outcome == "dropped" and t.endpoints == ()
    assert t.request.hops[-1].name == "n1" and t.request.hops[-1].step("drop")


@pytest.mark.parametrize("name, args", [
    ("pod-service-itp-local-dropped", ("client", "web", ITP, ("web-5d8f7-a1",))),
    ("pod-nodeport-etp-local-other-node", ("client", "198.18.0.12:30080", ETP, (), "10.244.0.67")),
])
def test_golden(name, args):
    t = run(*args)
    check(GOLDEN / f"{name}.txt", render.text(t))
    check(GOLDEN / f"{name}.json", render.to_json(t))


# ---- spec.externalIPs (issue 16 §2): the client's node load-balances the external IP ----
EXT = {"externalIPs": ["192.0.2.80"]}


def test_external_ip_cluster_policy_masquerades_on_the_clients_node():
    t = run("client", "192.0.2.80:80", EXT, endpoint="10.244.0.66")
    assert _node_of(t) == {"n1", "n2"} and t.request.outcome == "delivered"
    n1 = next(h for h in t.request.hops if h.name == "n1")
    dnat = n1.step("dnat")
    assert dnat and dnat.data["from"] == "192.0.2.80:80" and "external IP" in dnat.text
    assert n1.step("snat") and n1.step("snat").data["why"] == "externalIP"
    assert t.request.hops[-1].headers.l3.src == "198.18.0.11"
    assert t.reply and t.reply.outcome == "delivered"
    assert t.reply.hops[-1].headers.l3.src == "192.0.2.80"  # the reply comes from the address asked
    # another port of the external IP is not the Service's
    assert run("client", "192.0.2.80:81", EXT).endpoints == ()


def test_external_ip_local_policy_does_not_apply_to_a_pod():
    t = run("client", "192.0.2.80:80", {**EXT, **ETP}, endpoint="10.244.0.67")
    assert _node_of(t) == {"n1", "n2"} and not any(h.step("snat") for h in t.request.hops[:2])
    assert any("does not apply to a pod" in n for n in t.notes)
    # no endpoint on the client's node: the external IP drops, even for a pod (kube-proxy)
    d = run("client", "192.0.2.80:80", {**EXT, **ETP}, unready=("web-5d8f7-a1",))
    assert d.request.outcome == "dropped" and d.request.hops[-1].step("drop")


def test_external_ip_golden():
    t = run("client", "192.0.2.80:80", EXT, (), "10.244.0.67")
    check(GOLDEN / "pod-external-ip-other-node.txt", render.text(t))
    check(GOLDEN / "pod-external-ip-other-node.json", render.to_json(t))


def _lb(ranges=None):
    d = {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False}
    if ranges:
        d["loadBalancerSourceRanges"] = ranges
    return d


def run_lb(traffic, ingress="198.51.100.80"):
    d = parse_dest(f"{ingress}:80")
    st = demo.state((), True, 0, traffic)
    web = st.get("Service", "shop", "web")
    web.raw["status"] = {"loadBalancer": {"ingress": [{"ip": ingress}]}}
    pod = find_pod(st, "shop", "client")
    facts = demo.facts("none")
    return predict(st, facts, pod, resolve(st, pod.namespace, d.text, 4, facts.outside_names), 80, "TCP", 4,
                   query=d.text)


def test_load_balancer_ip_and_its_source_ranges():
    t = run_lb(_lb())
    assert _node_of(t) == {"n1", "n2"} and t.request.outcome == "delivered"
    assert any("load balancer IP" in n for n in t.notes)
    assert run_lb(_lb(["10.244.0.0/24"])).request.outcome == "delivered"
    d = run_lb(_lb(["203.0.113.0/24"]))
    assert d.request.outcome == "dropped" and "loadBalancerSourceRanges" in d.request.why
