"""The agent's Node through the Kubernetes API (issue 15): a real cluster's kubelet owns the
Node's status (addresses, Ready and its other conditions, nodeInfo, capacity); the agent
writes only its own part (annotations, the NetworkUnavailable condition) with patches.
Against a `podnet apiserver` process, with a "kubelet" writer of its own (the official
client, the node's identity, strategic merge patches of the status as kubelet sends them)
and the agent's real loop with a role that touches no kernel. No root."""
from __future__ import annotations

import json
import threading
import time

import pytest

from podnet.agent.agent import Agent, AgentContext
from podnet.api.core import AGENT_ANNOTATION, PODNET_ANNOTATION
from podnet.api.objects import Node
from podnet.datastore.interface import NotFound, open_datastore

pytestmark = pytest.mark.kubernetes

KUBELET_ADDRESSES = [{"type": "InternalIP", "address": "10.0.0.5"},
                     {"type": "InternalIP", "address": "fd00::5"},
                     {"type": "Hostname", "address": "worker-1"}]


class NoKernel:
    name = "nokernel"
    kinds = ("Service",)

    def nft_fragment(self, state, changed):
        return ""

    def committed(self, ok: bool) -> None:
        pass

    def apply_kernel(self, state) -> None:
        pass


class Kubelet:
    """The node's kubelet as far as its Node goes: registers it, posts its status."""

    def __init__(self, kubeconfig) -> None:
        from kubernetes import client, config
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))

    def register(self) -> None:
        self.api.create_node({"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": "worker-1", "labels": {"kubelet-label": "x"}}},
                             _preload_content=False)

    def post_status(self, beat: str) -> None:
        # two InternalIPs share the merge key "type": the list goes whole ($patch: replace)
        self.api.patch_node_status("worker-1", {"status": {
            "addresses": [*KUBELET_ADDRESSES, {"$patch": "replace"}],
            "capacity": {"cpu": "2", "pods": "110"},
            "nodeInfo": {"kubeletVersion": "v1.31.0", "containerRuntimeVersion": "containerd://2.0"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "lastHeartbeatTime": beat},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": beat}]}},
            _preload_content=False)  # the answer as JSON: the typed model wants a full nodeInfo


def run_agent(url: str, node_ips: list[str]) -> None:
    """One agent life: start, first sync, register; then stop (as a restart's old half)."""
    store = open_datastore(url)
    agent = Agent(AgentContext("worker-1", node_ips, "vxlan", None, store,
                               {"node_labels": {"topology.kubernetes.io/zone": "z1"}}),
                  roles=[NoKernel()])
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while agent.syncs < 1 or not _agent_beat(store):
            assert time.monotonic() < deadline and t.is_alive(), "the agent did not register"
            time.sleep(0.05)
    finally:
        agent.stop.set()
        t.join(10)
        store.close()


def _agent_beat(store) -> bool:
    try:
        return AGENT_ANNOTATION in store.get("Node", "", "worker-1").annotations
    except NotFound:
        return False


def conditions(node) -> dict:
    return {c["type"]: c for c in node.status.get("conditions") or []}


def assert_kubelets_status_kept(node: Node, beat: str, registered_by_kubelet: bool = True) -> None:
    st = node.status
    assert st["addresses"] == KUBELET_ADDRESSES
    assert st["capacity"] == {"cpu": "2", "pods": "110"}
    assert st["nodeInfo"] == {"kubeletVersion": "v1.31.0", "containerRuntimeVersion": "containerd://2.0"}
    c = conditions(node)
    assert c["Ready"]["reason"] == "KubeletReady" and c["Ready"]["lastHeartbeatTime"] == beat
    assert c["MemoryPressure"]["status"] == "False"
    assert c["NetworkUnavailable"]["status"] == "False" and c["NetworkUnavailable"]["reason"] == "PodnetIsUp"
    assert "agent" not in st and "podnet" not in st  # a real API server has no such fields
    assert node.labels.get("kubelet-label") == ("x" if registered_by_kubelet else None)
    assert node.labels["topology.kubernetes.io/zone"] == "z1"
    assert node.agent_report["health"] == "healthy" and node.agent_report["syncs"] >= 1
    assert node.podnet_report["encap"] == "vxlan" and node.podnet_report["vxlanMAC"]


def test_the_kubelets_node_status_survives_the_agents_register_and_restarts(kube):
    kubelet = Kubelet(kube.user_kubeconfig("kubelet", "system:node:worker-1", ("system:nodes",)))
    agent_url = f"kubernetes://?kubeconfig={kube.user_kubeconfig('agent', 'system:node:worker-1', ('system:nodes',))}"
    kubelet.register()
    kubelet.post_status("2026-12-03T10:00:00Z")
    # the agent's own idea of the node's addresses differs: the kubelet's stay
    run_agent(agent_url, ["198.18.0.11"])
    admin = open_datastore(kube.url)
    try:
        node = admin.get("Node", "", "worker-1")
        assert_kubelets_status_kept(node, "2026-12-03T10:00:00Z")
        assert isinstance(node, Node)
        kubelet.post_status("2026-12-03T10:00:10Z")
        run_agent(agent_url, ["198.18.0.11"])  # the agent restarted
        node = admin.get("Node", "", "worker-1")
        assert_kubelets_status_kept(node, "2026-12-03T10:00:10Z")
        json.loads(node.annotations[PODNET_ANNOTATION])
    finally:
        admin.close()


def test_a_node_no_kubelet_posts_gets_the_agents_addresses_until_a_kubelet_posts(kube):
    """The lab's case: nobody posts node status, so the agent creates the Node with its
    addresses and a Ready of its own; once a kubelet posts, its addresses and its Ready win
    and the agent leaves them alone."""
    agent_url = f"kubernetes://?kubeconfig={kube.user_kubeconfig('agent', 'system:node:worker-1', ('system:nodes',))}"
    run_agent(agent_url, ["198.18.0.11", "fd00:198:18::11"])
    admin = open_datastore(kube.url)
    try:
        node = admin.get("Node", "", "worker-1")
        assert isinstance(node, Node) and node.internal_ips == ["198.18.0.11", "fd00:198:18::11"]
        assert conditions(node)["Ready"]["reason"] == "PodnetAgentReady"
        kubelet = Kubelet(kube.user_kubeconfig("kubelet", "system:node:worker-1", ("system:nodes",)))
        kubelet.post_status("2026-12-03T11:00:00Z")
        run_agent(agent_url, ["198.18.0.11", "fd00:198:18::11"])
        assert_kubelets_status_kept(admin.get("Node", "", "worker-1"), "2026-12-03T11:00:00Z", False)
    finally:
        admin.close()
