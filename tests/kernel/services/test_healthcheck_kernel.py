"""kube-proxy's service health check served by the agent's HealthCheckRole inside a node
netns (issue 16 §2): real HTTP on the healthCheckNodePort, over IPv4 and IPv6, 200 with the
local endpoint count when the node has a ready endpoint of the Service, 503 when not; the
listener follows the Services (gone: connection refused)."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from netnames import unique_netns
from podnet.agent.healthcheck import HealthCheckRole
from podnet.calc.model import ClusterState
from podnet.dataplane.net.sysctl import call_in_netns
from builders import endpoint, make_service, make_slice

pytestmark = pytest.mark.root


def get(netns: str, url: str) -> tuple[int, dict]:
    def body() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        except OSError as e:
            return -1, {"error": str(e)}
    return call_in_netns(netns, body)


def lb(name, hc, policy="Local"):
    def m(d):
        d["spec"].update(type="LoadBalancer", externalTrafficPolicy=policy, healthCheckNodePort=hc)
    return make_service("default", name, m)


@pytest.fixture
def netns():
    ns = unique_netns("hc")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_health_check_answers_by_local_endpoints(netns):
    state = ClusterState.from_objects([
        lb("here", 31501), make_slice("default", "here", [endpoint("10.244.1.2", node="node-1"),
                                                          endpoint("10.244.1.3", node="node-1"),
                                                          endpoint("10.244.2.2", node="node-2")]),
        lb("away", 31502), make_slice("default", "away", [endpoint("10.244.2.3", node="node-2"),
                                                          endpoint("10.244.1.4", node="node-1", ready=False)]),
        lb("cluster", 31503, "Cluster")], node_name="node-1")
    role = HealthCheckRole(netns)
    try:
        role.apply_kernel(state)
        assert get(netns, "http://127.0.0.1:31501/healthz") == (200, {
            "service": {"namespace": "default", "name": "here"}, "localEndpoints": 2, "serviceProxyHealthy": True})
        assert get(netns, "http://[::1]:31501/")[0] == 200
        assert get(netns, "http://127.0.0.1:31502/") == (503, {
            "service": {"namespace": "default", "name": "away"}, "localEndpoints": 0, "serviceProxyHealthy": True})
        assert get(netns, "http://127.0.0.1:31503/")[0] == -1  # eTP Cluster: no health check
        # the local endpoints leave: 503; the Service goes: nothing listens any more
        state.put(make_slice("default", "here", [endpoint("10.244.2.2", node="node-2")]))
        role.apply_kernel(state)
        assert get(netns, "http://127.0.0.1:31501/")[0] == 503
        state.remove("Service", "default", "here")
        role.apply_kernel(state)
        assert get(netns, "http://127.0.0.1:31501/")[0] == -1
    finally:
        role.close()
