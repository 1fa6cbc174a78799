"""Drain planning (`podnet node delete`, issue 17 §4): which pods are evicted, waited for,
replaced by their Deployment or gone, and how long the drain may take. Pure."""
from __future__ import annotations

from podnet.api.objects import from_dict
from podnet.lab.drain import SLACK, plan_drain


def pod(name, node, owner=False, terminating=False, grace=None):
    md = {"name": name, "namespace": "default"}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                  "uid": "u1", "controller": True}]
    if terminating:
        md["deletionTimestamp"] = "2026-12-03T10:00:00Z"
        md["deletionGracePeriodSeconds"] = 3
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec})


def test_only_the_nodes_pods_are_evicted_and_terminating_ones_are_waited_for():
    pods = [pod("web-1", "n2", owner=True, grace=5), pod("solo", "n2", grace=1),
            pod("web-2", "n1", owner=True), pod("ending", "n2", terminating=True),
            pod("unscheduled", "")]
    p = plan_drain(pods, "n2")
    assert [x.name for x in p.evict] == ["solo", "web-1"]
    assert [x.name for x in p.waiting] == ["ending"]
    assert p.replaced == ("default/web-1",) and p.ends == ("default/solo",)
    assert p.timeout == 5 + SLACK


def test_a_node_without_pods_drains_at_once():
    p = plan_drain([pod("web-2", "n1", owner=True)], "n2")
    assert (p.evict, p.waiting, p.timeout) == ((), (), SLACK)


def test_the_default_grace_period_bounds_the_wait_of_a_pod_without_one():
    assert plan_drain([pod("solo", "n2")], "n2").timeout == 30 + SLACK
