"""The web view's JSON, built purely: topology (pods by node with both families, Services
with VIPs and endpoints, pools and blocks) and a matrix cell's explanation."""
from __future__ import annotations

from podnet.api.objects import Resource, from_dict
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import predict
from podnet.cli.ui import actions, views
from builders import endpoint, make_namespace, make_node, make_pod, make_pool, make_service, make_slice


def _block(cidr: str, node: str, used: int) -> Resource:
    return Resource({"apiVersion": "podnet.io/v1", "kind": "IPAMBlock", "metadata": {"name": cidr.replace("/", "-")},
                     "spec": {"cidr": cidr, "pool": "v4", "affinity": f"host:{node}",
                              "allocations": {str(i): f"h{i}" for i in range(used)}}})


def _deny_web() -> Resource:
    return from_dict({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                      "metadata": {"namespace": "shop", "name": "web-from-clients"},
                      "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                               "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}})


def _objects() -> list[Resource]:
    return [make_namespace("shop"),
            make_node("n1", ["198.18.0.11", "fd00:198:18::11"]), make_node("n2", ["198.18.0.12"]),
            make_pod("shop", "web-1", ["10.244.0.2", "fd00:10:244::2"], {"app": "web"}, node="n1"),
            make_pod("shop", "client", ["10.244.1.2"], {"role": "client"}, node="n2"),
            make_pod("shop", "other", ["10.244.1.3"], {"role": "other"}, node="n2"),
            make_pod("shop", "pending", [], node="n9"),
            make_service("shop", "web", ip="10.96.0.20", selector={"app": "web"}),
            make_slice("shop", "web", [endpoint("10.244.0.2", node="n1", pod="web-1")]),
            make_pool("v4", "10.244.0.0/16"), _block("10.244.0.0/26", "n1", 2), _block("10.244.1.0/26", "n2", 3),
            _deny_web()]


def _lister(objs: list[Resource]):
    return lambda kind: [o for o in objs if o.kind == kind]


def test_topology_groups_pods_by_node_with_both_families():
    t = views.topology(_lister(_objects()), None, 7)
    assert t["revision"] == 7
    assert [n["name"] for n in t["nodes"]] == ["n1", "n2"]
    n1, n2 = t["nodes"]
    assert [(p["name"], p["ipv4"], p["ipv6"]) for p in n1["pods"]] == [("web-1", ["10.244.0.2"], ["fd00:10:244::2"])]
    assert [p["name"] for p in n2["pods"]] == ["client", "other"]
    assert [p["name"] for p in t["unscheduled"]] == ["pending"]
    assert [(b["cidr"], b["used"], b["size"]) for b in n1["blocks"]] == [("10.244.0.0/26", 2, 64)]
    assert [(b["cidr"], b["used"]) for b in n2["blocks"]] == [("10.244.1.0/26", 3)]
    assert t["policies"] == ["shop/web-from-clients"]
    assert [(p["name"], p["cidr"], p["blockSize"]) for p in t["pools"]] == [("v4", "10.244.0.0/16", 26)]


def test_topology_services_with_vips_and_endpoints():
    svc = views.topology(_lister(_objects()), None, 1)["services"]
    assert len(svc) == 1
    s = svc[0]
    assert (s["namespace"], s["name"], s["clusterIPs"]) == ("shop", "web", ["10.96.0.20"])
    assert s["ports"][0]["port"] == 80 and s["ports"][0]["targetPort"] == 8080
    assert [(e["address"], e["node"], e["ready"]) for e in s["endpoints"]] == [("10.244.0.2", "n1", True)]


def _wired(d) -> None:
    d["metadata"]["annotations"] = {"podnet.io/netns": f"pn-x-p{d['metadata']['name']}"}


def test_matrix_is_analyze_prediction_over_the_wired_pods():
    objs = [make_pod(o.namespace, o.name, o.pod_ips, dict(o.labels), _wired, node=o.node_name)
            if o.kind == "Pod" and o.name != "pending" else o for o in _objects()]
    state = ClusterState.from_objects(objs)
    got = actions.matrix(state, {"port": "8080", "namespace": "shop"})["tables"]
    assert len(got) == 1 and got[0]["family"] == 4
    # the pods a probe would use: wired, with an IPv4 address (not "pending")
    assert got[0]["from"] == got[0]["to"] == ["shop/client", "shop/other", "shop/web-1"]
    pods = sorted((p for p in state.pods if p.name != "pending"), key=lambda p: p.name)
    want = predict(state, 8080, "TCP", 4, sources=pods, targets=pods).to_json()
    assert got[0]["cells"] == want["cells"]
    cells = {(c["from"], c["to"]): c["allowed"] for c in got[0]["cells"]}
    assert cells[("shop/client", "shop/web-1")] is True
    assert cells[("shop/other", "shop/web-1")] is False
    assert actions.matrix(state, {"port": "8080", "family": "6"})["tables"][0]["from"] == ["shop/web-1"]


def test_explain_names_the_policy_and_the_rule():
    state = ClusterState.from_objects(_objects())
    denied = views.explain(state, "shop/other", "shop/web-1", 8080, "TCP", 4)
    assert denied["allowed"] is False
    assert denied["ingress"]["isolated"] and denied["ingress"]["policies"] == ["shop/web-from-clients"]
    assert denied["ingress"]["rule"] is None and not denied["egress"]["isolated"]
    assert any("web-from-clients" in line for line in denied["targetPolicies"])
    ok = views.explain(state, "shop/client", "shop/web-1", 8080, "TCP", 4)
    assert ok["allowed"] is True and ok["ingress"]["rule"] == "shop/web-from-clients/ingress/0"
    outside = views.explain(state, "shop/client", "203.0.113.10", 80, "TCP", 4)
    assert outside["allowed"] is True and "targetPolicies" not in outside
