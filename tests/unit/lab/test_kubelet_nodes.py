"""The lab kubelet's view of the nodes (issue 17 §4): cordoned nodes get no new pod; a Node
the spec lacks (a node added) or a node of the spec whose Node is gone (deleted) makes it
read lab.json again. And `podnet node add` refuses what it cannot do before changing
anything. No root: a lab state in a temp dir."""
from __future__ import annotations

import pytest

from podnet.api.objects import from_dict
from podnet.lab.kubelet_nodes import LabNodes
from podnet.lab.node_add import add_node
from podnet.lab.state import LabState
from podnet.lab.topology import TopologyError, make_spec, spec_to_dict
from podnet.lab.up import LabError


def node(name, unschedulable=False):
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": name},
                      "spec": {"unschedulable": True} if unschedulable else {}})


@pytest.fixture
def state(tmp_path):
    st = LabState(tmp_path / "lab")
    st.create()
    return st


def save(state, spec):
    state.write_meta({"spec": spec_to_dict(spec), "datastoreURLs": {"cni": "sqlite:///x"}})


def test_cordoned_nodes_are_not_schedulable_until_uncordoned(state):
    spec = make_spec("kn", 3)
    save(state, spec)
    nodes = LabNodes(spec, state, {})
    assert nodes.relisted([node("n1"), node("n2", unschedulable=True), node("n3")]) is False
    assert nodes.schedulable() == ["n1", "n3"]
    assert nodes.event("MODIFIED", node("n2")) is False and nodes.schedulable() == ["n1", "n2", "n3"]
    nodes.event("MODIFIED", node("n3", unschedulable=True))
    assert nodes.schedulable() == ["n1", "n2"]


def test_an_added_node_is_learned_from_lab_json_when_its_node_appears(state):
    spec = make_spec("kn", 2)
    save(state, spec)
    nodes = LabNodes(spec, state, {})
    assert nodes.event("ADDED", node("n3")) is False  # lab.json does not have it yet: no change
    save(state, spec.with_node("n3"))
    assert nodes.event("ADDED", node("n3")) is True
    assert nodes.schedulable() == ["n1", "n2", "n3"] and "n3" in nodes.serve
    assert nodes.cni_urls["n3"] == "sqlite:///x"
    assert nodes.event("MODIFIED", node("n3")) is False  # a heartbeat reads nothing


def test_a_deleted_node_leaves_the_kubelets_spec(state):
    spec = make_spec("kn", 3)
    save(state, spec)
    nodes = LabNodes(spec, state, {})
    nodes.event("MODIFIED", node("n3", unschedulable=True))
    save(state, spec.without_node("n3"))
    assert nodes.event("DELETED", node("n3")) is True
    assert nodes.schedulable() == ["n1", "n2"] and "n3" not in nodes.serve
    # a relist that finds the Nodes and the spec agree reads nothing
    assert nodes.relisted([node("n1"), node("n2")]) is False


@pytest.mark.parametrize("store,name,err", [("kubernetes", "n3", LabError), ("sqlite", "n2", TopologyError),
                                            ("sqlite", "web", TopologyError)])
def test_node_add_refuses_before_changing_anything(state, store, name, err):
    spec = make_spec("kn", 2, datastore=store)
    save(state, spec)
    before = state.path("lab.json").read_bytes()
    with pytest.raises(err):
        add_node(spec, state, None, name)  # type: ignore[arg-type]  # no store is touched
    assert state.path("lab.json").read_bytes() == before
