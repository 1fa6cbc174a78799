"""What the ClusterNetworkPolicy tests share: the cases (tests/golden/policy/
cluster_cases.yaml), a Node `node-2` with the outside world's addresses (for random
`nodes` peers) and the cluster state of a step."""
from __future__ import annotations

from podnet.api.objects import Node, Resource
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import e2e_model
from policy_cases import CLUSTER_CASES_FILE, load_cases

CASES = load_cases(CLUSTER_CASES_FILE)
OUTSIDE_V4, OUTSIDE_V6 = "203.0.113.10", "fd00:203:113::10"


def node_2() -> Node:
    return Node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2", "labels": {"role": "other"}},
                 "status": {"addresses": [{"type": "InternalIP", "address": OUTSIDE_V4},
                                          {"type": "InternalIP", "address": OUTSIDE_V6}]}})


def state_of(policies: list[Resource]) -> ClusterState:
    return ClusterState.from_objects(e2e_model() + list(policies), node_name="node-1")
