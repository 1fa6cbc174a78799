"""The agent loop with fake roles on a real SQLite store: list before any kernel work,
changed keys per role, no-op events dropped, Node registered. No root, no kernel."""
from __future__ import annotations

import threading
import time

from podnet.agent.agent import Agent, AgentContext, load_roles
from podnet.api.objects import ObjectKey, from_dict
from podnet.datastore.sqlite import SqliteDatastore
from builders import make_service


class FakeRole:
    name = "fake"
    kinds = ("Service",)

    def __init__(self) -> None:
        self.calls: list[set[ObjectKey] | None] = []
        self.kernel = 0
        self.ok: list[bool] = []

    def nft_fragment(self, state, changed):
        self.calls.append(None if changed is None else set(changed))
        return ""

    def committed(self, ok: bool) -> None:
        self.ok.append(ok)

    def apply_kernel(self, state) -> None:
        self.kernel += 1


def svc(name: str, port: int = 80):
    return make_service("default", name, ip="", ports=[{"port": port}])


def wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_loop_lists_first_then_passes_only_relevant_changes(tmp_path):
    store = SqliteDatastore(f"sqlite:///{tmp_path}/s.db")
    store.create(svc("a"))
    role = FakeRole()
    agent = Agent(AgentContext("n1", ["198.18.0.11", "fd00:198:18::11"], "none", None, store), roles=[role])
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        wait(lambda: role.calls and store.list("Node").items)
        assert role.calls[0] is None  # the first sync is full, after the list
        node = store.get("Node", "", "n1")
        assert node.internal_ips == ["198.18.0.11", "fd00:198:18::11"]
        assert node.status["agent"]["health"] == "healthy" and node.status["podnet"]["vxlanMAC"]
        n = len(role.calls)
        store.create(svc("b"))
        wait(lambda: {ObjectKey("Service", "default", "b")} in role.calls[n:])
        n = len(role.calls)
        cur = store.get("Service", "default", "b")
        store.update(cur)  # same content: a no-op for the roles
        store.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}))
        time.sleep(0.3)
        assert all(c == set() for c in role.calls[n:]), role.calls[n:]  # nothing of its kinds
        assert role.kernel >= 1 and all(role.ok)
    finally:
        agent.stop.set()
        t.join(5)
        store.close()


def test_every_role_is_loaded_in_kernel_order():
    roles = load_roles(AgentContext("n1", ["198.18.0.11"]))
    assert [type(r).__name__ for r in roles] == ["RoutesRole", "ServiceProxyRole", "PolicyRole", "NatRole", "HealthCheckRole"]

def test_services_left_to_kube_proxy_load_no_service_proxy():
    """--services kube-proxy: no service proxy and no health-check listeners; a full sync
    only removes a podnet-svc table an earlier agent left; partial syncs render nothing."""
    roles = load_roles(AgentContext("n1", ["198.18.0.11"], options={"services": "kube-proxy"}))
    assert [type(r).__name__ for r in roles] == ["RoutesRole", "NoServiceProxyRole", "PolicyRole", "NatRole"]
    off = roles[1]
    assert off.nft_fragment(None, None).splitlines() == ["add table inet podnet-svc", "delete table inet podnet-svc"]
    assert off.nft_fragment(None, {ObjectKey("Service", "default", "a")}) == "" and off.kinds == ()


def test_register_keeps_the_agents_node_labels(tmp_path):
    store = SqliteDatastore(f"sqlite:///{tmp_path}/s.db")
    zone = "topology.kubernetes.io/zone"
    ctx = AgentContext("n1", ["198.18.0.11"], "none", None, store, {"node_labels": {zone: "a"}})
    Agent(ctx, roles=[]).register()
    assert store.get("Node", "", "n1").labels == {"kubernetes.io/hostname": "n1", zone: "a"}
    # someone else's label stays; the agent's own comes back (kubelet keeps its zone label)
    node = store.get("Node", "", "n1")
    store.update(node.with_metadata(labels={"team": "x", zone: "b"}))
    Agent(ctx, roles=[]).register()
    assert store.get("Node", "", "n1").labels == {"team": "x", zone: "a"}


def test_register_on_a_store_keeps_other_writers_status(tmp_path):
    """The agent writes its own parts of the status (addresses, Ready, agent, podnet,
    nodeInfo.podnetVersion); another writer's conditions and fields stay."""
    store = SqliteDatastore(f"sqlite:///{tmp_path}/s.db")
    ctx = AgentContext("n1", ["198.18.0.11"], "none", None, store)
    Agent(ctx, roles=[]).register()
    node = store.get("Node", "", "n1")
    other = {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"}
    store.update(node.with_status({**node.status, "capacity": {"pods": "110"},
                                   "conditions": [*node.status["conditions"], other],
                                   "nodeInfo": {**node.status["nodeInfo"], "kubeletVersion": "v1.31.0"}}))
    Agent(ctx, roles=[]).register()
    st = store.get("Node", "", "n1").status
    assert st["capacity"]["pods"] == "110" and other in st["conditions"]
    assert [c["type"] for c in st["conditions"]].count("Ready") == 1
    assert st["nodeInfo"]["kubeletVersion"] == "v1.31.0" and st["nodeInfo"]["podnetVersion"]
    assert st["agent"]["health"] == "healthy"
    store.close()
