"""lab/workloads.py: scheduling, Deployment expansion, pod status. Pure, no root."""
from __future__ import annotations

import random

from hypothesis import given, strategies as st

from podnet.api.objects import Deployment, Pod, from_dict
from podnet.lab.workloads import (HASH_LABEL, deployment_plan, owned_by, running_status,
                                  schedule, template_hash)
from builders import make_pod


def pod(name: str, node: str = "", ready: bool = False, labels: dict | None = None,
        owner: Deployment | None = None, created: str = "2026-01-01T00:00:00Z") -> Pod:
    def m(d: dict) -> None:
        d["metadata"].update(uid=f"uid-{name}", creationTimestamp=created)
        if owner is not None:
            d["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": owner.name, "uid": owner.uid}]
        d["status"] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return make_pod("default", name, [], labels, m, node=node, ports=[{"containerPort": 80}])


def deployment(replicas: int, image: str = "i") -> Deployment:
    return from_dict({"kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "d1"},
                      "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}},
                                            "spec": {"containers": [{"name": "c", "image": image}]}}}})  # type: ignore[return-value]


def test_schedule_spreads_and_honours_node_name():
    nodes = ["n1", "n2", "n3"]
    pods = [pod("a", "n1"), pod("b", "n1"), pod("c", "n2")]
    assert schedule(pod("x"), nodes, pods) == "n3"
    assert schedule(pod("x", "n1"), nodes, pods) == "n1"
    assert schedule(pod("x"), [], pods) is None


@given(st.integers(1, 6), st.integers(0, 60))
def test_scheduling_one_by_one_keeps_nodes_within_one(n_nodes, n_pods):
    nodes = [f"n{i}" for i in range(1, n_nodes + 1)]
    placed: list[Pod] = []
    for i in range(n_pods):
        placed.append(pod(f"p{i}", schedule(pod(f"p{i}"), nodes, placed) or ""))
    counts = [sum(1 for p in placed if p.node_name == n) for n in nodes]
    assert max(counts) - min(counts) <= 1


def test_deployment_creates_named_labelled_owned_pods():
    d = deployment(3)
    plan = deployment_plan(d, [], random.Random(1))
    assert len(plan.create) == 3 and not plan.delete
    h = template_hash(d.template)
    for p in plan.create:
        prefix, hh, suffix = p.name.rsplit("-", 2)
        assert prefix == "web" and hh == h and len(suffix) == 5
        assert p.labels == {"app": "web", HASH_LABEL: h} and owned_by(p, d)
    assert len({p.name for p in plan.create}) == 3


def test_scale_down_removes_unready_then_newest_and_reports_status():
    d = deployment(2)
    h = template_hash(d.template)
    lab = {"app": "web", HASH_LABEL: h}
    pods = [pod("web-a", "n1", True, lab, d, "2026-01-01T00:00:01Z"),
            pod("web-b", "n1", True, lab, d, "2026-01-01T00:00:03Z"),
            pod("web-c", "n2", False, lab, d, "2026-01-01T00:00:00Z"),
            pod("web-d", "n2", True, lab, d, "2026-01-01T00:00:02Z"),
            pod("other", "n2", True, lab)]  # not owned: never touched
    plan = deployment_plan(d, pods)
    assert [p.name for p in plan.delete] == ["web-c", "web-b"]
    assert plan.status["replicas"] == 2 and plan.status["readyReplicas"] == 2


def test_changed_template_replaces_old_pods():
    old = deployment(2, "v1")
    h_old = template_hash(old.template)
    pods = [pod(f"web-{i}", "n1", True, {"app": "web", HASH_LABEL: h_old}, old) for i in range(2)]
    plan = deployment_plan(deployment(2, "v2"), pods)
    assert len(plan.create) == 2 and {p.name for p in plan.delete} == {"web-0", "web-1"}


def test_steady_state_plans_nothing():
    d = deployment(2)
    first = deployment_plan(d, [])
    assert deployment_plan(d, list(first.create)).create == ()
    assert deployment_plan(d, list(first.create)).delete == ()


def test_running_status_is_what_kubectl_reads():
    p = pod("a", "n1")
    st_ = running_status(p, ["10.244.0.1", "fd00::1"], ["198.18.0.11"], "T", True, "")
    assert st_["phase"] == "Running" and st_["podIP"] == "10.244.0.1"
    assert st_["podIPs"] == [{"ip": "10.244.0.1"}, {"ip": "fd00::1"}]
    assert st_["hostIP"] == "198.18.0.11"
    assert Pod({"kind": "Pod", "status": st_}).ready
