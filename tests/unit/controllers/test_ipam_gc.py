"""The IPAM garbage collector against a real SQLite store: a leaked address is freed only
after the grace period, a live pod's never, whatever order pods and nodes die in."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from podnet.api.objects import from_dict
from podnet.controllers.ipam_gc import IpamGarbageCollector
from podnet.datastore.sqlite import SqliteDatastore
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.audit import LEAKED, LIVE, audit
from podnet.ipam.blocks import Handle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def seed(s, nodes=("n1", "n2")):
    s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                        "spec": {"cidr": "10.9.0.0/24", "blockSize": 28}}))
    for n in nodes:
        s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": n}}))


def start_pod(s, name, node):
    """A pod as the lab starts one: the object, then CNI ADD's allocation (handle = uid)."""
    pod = s.create(from_dict({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": name, "namespace": "default"},
                              "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}))
    [got] = Allocator(s, node).assign(Request(Handle(node, "podnet", pod.uid, "eth0"), (4,)))
    return pod, got.address


def statuses(s):
    report = audit(Allocator(s, "").blocks(), s.list("Pod").items, s.list("Node").items)
    return {a.address: a.status for a in report.allocations}


@pytest.fixture
def store(tmp_path):
    s = SqliteDatastore(f"sqlite:///{tmp_path}/gc.db")
    yield s
    s.close()


def test_a_leaked_address_is_freed_after_the_grace_period_only(store):
    seed(store)
    clock = Clock()
    gc = IpamGarbageCollector(store, grace=60, clock=clock)
    _, live = start_pod(store, "web", "n1")
    gone, leaked = start_pod(store, "old", "n1")
    store.delete("Pod", "default", "old")          # deleted without CNI DEL: leaked
    assert gc.sweep() == []                        # first seen now
    clock.now = 59
    assert gc.sweep() == [] and statuses(store)[str(leaked)] == LEAKED
    clock.now = 60
    assert gc.sweep() == [leaked]
    assert statuses(store) == {str(live): LIVE}
    assert gc.released == 1


def test_a_pod_that_appears_within_the_grace_is_kept(store):
    """An allocation seen before its pod (or a pod created between the sweep's reads) is
    leaked for one sweep only; it must not be freed."""
    seed(store)
    clock = Clock()
    gc = IpamGarbageCollector(store, grace=30, clock=clock)
    [got] = Allocator(store, "n1").assign(Request(Handle("n1", "podnet", "uid-soon", "eth0"), (4,)))
    assert gc.sweep() == []
    pod = from_dict({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "soon", "namespace": "default", "uid": "uid-soon"},
                     "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
    store.create(pod)
    assert store.get("Pod", "default", "soon").uid == "uid-soon"
    clock.now = 100
    assert gc.sweep() == [] and statuses(store)[str(got.address)] == LIVE


def test_a_vanished_nodes_addresses_are_freed(store):
    seed(store)
    clock = Clock()
    gc = IpamGarbageCollector(store, grace=10, clock=clock)
    _, addr = start_pod(store, "a", "n2")
    store.delete("Node", "", "n2")
    gc.sweep()
    clock.now = 10
    assert gc.sweep() == [addr]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["start", "kill_pod", "kill_node", "sweep", "wait"]),
                          st.integers(0, 5), st.sampled_from(["n1", "n2", "n3"])), max_size=30))
def test_never_a_live_pods_address_and_every_old_leak_freed(tmp_path_factory, ops):
    s = SqliteDatastore(f"sqlite:///{tmp_path_factory.mktemp('gc')}/gc.db")
    try:
        seed(s, ("n1", "n2", "n3"))
        clock = Clock()
        gc = IpamGarbageCollector(s, grace=20, clock=clock)
        alive_nodes = {"n1", "n2", "n3"}
        pods: dict[str, tuple[str, str]] = {}   # name -> (node, address)
        n = 0
        for op, i, node in ops:
            if op == "start" and node in alive_nodes:
                n += 1
                _, addr = start_pod(s, f"p{n}", node)
                pods[f"p{n}"] = (node, str(addr))
            elif op == "kill_pod" and pods:
                name = sorted(pods)[i % len(pods)]
                s.delete("Pod", "default", name)
                del pods[name]
            elif op == "kill_node" and node in alive_nodes:
                s.delete("Node", "", node)
                alive_nodes.discard(node)
            elif op == "sweep":
                gc.sweep()
            elif op == "wait":
                clock.now += 15
            # a pod that exists on a live node always keeps its address
            held = statuses(s)
            for name, (pnode, addr) in pods.items():
                if pnode in alive_nodes:
                    assert held.get(addr) == LIVE, (name, addr, held)
        gc.sweep()
        clock.now += 20
        gc.sweep()
        assert LEAKED not in statuses(s).values()
    finally:
        s.close()
