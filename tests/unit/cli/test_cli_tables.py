"""Tables of the kinds other parts fill (nodes, endpoint slices, policies), -n on apply,
and the round trip: what was applied comes back, plus what the server set."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from cli_helpers import run, write
from podnet.datastore.interface import open_datastore

NODE = {"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "198.18.0.11"}],
                   "nodeInfo": {"podnetVersion": "0.1.0"},
                   "agent": {"health": "healthy", "sync": {"full": 3, "partial": 41, "failed": 1,
                                                           "lastSeconds": 0.0021,
                                                           "roles": {"services": {"full": 3, "partial": 40}}}},
                   "podnet": {"blocks": ["10.244.3.0/26", "fd00:10:244:0:1::/122"]}}}
SLICE = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [f"10.244.0.{i}"], "conditions": {"ready": True}} for i in range(1, 6)]}
NETPOL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
          "spec": {"podSelector": {}}}


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_nodes(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", write(tmp / "n.json", json.dumps(NODE)))
    r = rows(run(capsys, "get", "no")[1])
    assert r[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert r[1][:3] + r[1][4:] == ["node-1", "Ready", "control-plane", "0.1.0"]
    r = rows(run(capsys, "get", "nodes", "-o", "wide")[1])
    assert r[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "BLOCKS", "AGENT", "SYNCS"]
    assert r[1][5:] == ["198.18.0.11", "10.244.3.0/26,fd00:10:244:0:1::/122", "healthy", "3f+41p,1err,2.1ms"]
    out = run(capsys, "describe", "node", "node-1")[1]
    assert "3f+41p,1err,2.1ms" in out
    assert any(line.split() == ["services", "3f+40p,0err,0.0ms"] for line in out.splitlines()), out


@pytest.mark.parametrize("seconds_ago, ready, agent", [(2, "Ready", "healthy"), (95, "Unknown", "stale(9")])
def test_a_node_whose_agent_stopped_beating_is_unknown_and_stale(env, capsys, seconds_ago, ready, agent):
    tmp, _ = env
    beat = (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    node = json.loads(json.dumps(NODE))
    node["status"]["agent"]["heartbeat"] = beat
    run(capsys, "apply", "-f", write(tmp / "n.json", json.dumps(node)))
    r = rows(run(capsys, "get", "nodes", "-o", "wide")[1])
    assert r[1][1] == ready and r[1][7].startswith(agent), r  # stale(95s) or (96s): whole seconds


def test_endpointslices_and_netpol(env, capsys):
    tmp, _ = env
    f = write(tmp / "x.yaml", yaml.safe_dump_all([SLICE, NETPOL]))
    assert run(capsys, "apply", "-f", f)[0] == 0
    r = rows(run(capsys, "get", "endpointslices")[1])
    assert r[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert r[1][:4] == ["web-abc", "IPv4", "8080", "10.244.0.1,10.244.0.2,10.244.0.3"]
    assert r[1][4:7] == ["+", "2", "more..."]
    r = rows(run(capsys, "get", "netpol")[1])
    assert r[0] == ["NAME", "POD-SELECTOR", "AGE"] and r[1][:2] == ["deny", "<none>"]
    out = run(capsys, "describe", "netpol", "deny")[1]
    assert "PodSelector:     <none> (all pods in the namespace)" in out
    assert "<none> (selected pods are isolated for ingress connectivity)" in out
    assert "Not affecting Egress traffic" in out


def test_apply_namespace_flag(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", write(tmp / "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"))
    f = write(tmp / "p.json", json.dumps(NETPOL))
    assert run(capsys, "apply", "-f", f, "-n", "shop") == (0, "networkpolicy.networking.k8s.io/deny created\n", "")
    assert run(capsys, "get", "netpol", "-n", "shop", "-o", "name")[1] == "networkpolicy.networking.k8s.io/deny\n"
    g = write(tmp / "q.json", json.dumps({**NETPOL, "metadata": {"name": "x", "namespace": "default"}}))
    rc, _, err = run(capsys, "apply", "-f", g, "-n", "shop")
    assert rc == 1 and "does not match --namespace shop" in err


def test_round_trip_keeps_every_field(env, capsys):
    tmp, url = env
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                             "annotations": {"example.com/owner": "team-a"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "podnet/serve",
                                                               "resources": {"limits": {"cpu": "100m"}}}]}},
                         "someFutureField": {"x": [1, 2, 3]}}}
    run(capsys, "apply", "-f", write(tmp / "s.json", json.dumps(manifest)))
    s = open_datastore(url)
    cur = s.get("Deployment", "default", "web")
    s.update(cur.with_status({"conditions": []}))
    s.close()
    got = json.loads(run(capsys, "get", "deploy", "web", "-o", "json")[1])
    md = got["metadata"]
    assert {"uid", "creationTimestamp", "resourceVersion", "generation"} <= set(md)
    assert md["generation"] == 1   # set by the server, as kube-apiserver does for a Deployment
    for f in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        md.pop(f)
    assert json.loads(md["annotations"].pop("podnet.io/last-applied")) == manifest
    assert got.pop("status") == {"conditions": []}
    assert got == manifest


def test_a_badly_written_object_does_not_break_get_or_describe(env, capsys):
    tmp, url = env
    from podnet.api.objects import from_dict
    s = open_datastore(url)
    s.create(from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": "default"},
                        "spec": {"ports": [{"port": "eighty"}]}}))
    s.close()
    rc, out, _ = run(capsys, "get", "svc")
    assert rc == 0 and rows(out)[1] == ["bad"] + ["<invalid>"] * 5
    rc, out, _ = run(capsys, "describe", "svc", "bad")
    assert rc == 0 and "Error:            this Service has malformed fields" in out


def test_pod_status_shows_container_reason_and_service_primary_ip(env, capsys):
    tmp, url = env
    from podnet.api.objects import from_dict
    s = open_datastore(url)
    s.create(from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                        "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "i"}]},
                        "status": {"phase": "Pending", "containerStatuses": [
                            {"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}}},
                            {"name": "d", "ready": False, "restartCount": 1,
                             "state": {"waiting": {"reason": "ContainerCreating"}}}]}}))
    s.create(from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ds", "namespace": "default"},
                        "spec": {"type": "NodePort", "clusterIP": "10.96.0.9",
                                 "clusterIPs": ["10.96.0.9", "fd00:10:96::9"],
                                 "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}}))
    s.close()
    assert rows(run(capsys, "get", "pods")[1])[1][:4] == ["p", "1/2", "ContainerCreating", "3"]
    assert rows(run(capsys, "get", "svc")[1])[1][:5] == ["ds", "NodePort", "10.96.0.9", "<none>",
                                                         "80:30080/TCP,53/UDP"]
