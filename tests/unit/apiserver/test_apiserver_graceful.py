"""Graceful pod deletion on the write path (issue 17 §1), as Kubernetes' pod strategy:
a scheduled pod is marked terminating with its grace period, an unscheduled or finished
one goes at once, grace 0 deletes, a second delete only shortens, and an update keeps
the mark. Also the pure pieces the lab kubelet uses for it."""
from __future__ import annotations

import pytest

from podnet.api.objects import from_dict
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.errors import BadRequest, Forbidden
from podnet.apiserver.write import Writer
from podnet.datastore.interface import Conflict, NotFound, open_datastore
from podnet.lab import termination
from podnet.lab.workloads import deployment_plan


@pytest.fixture
def writer(tmp_path):
    s = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    w = Writer(s)
    ensure_default_namespaces(w)
    yield w
    s.close()


def pod(name="p", node="n1", **spec):
    d = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
         "spec": {"containers": [{"name": "c", "image": "x"}], **({"nodeName": node} if node else {}), **spec}}
    return from_dict(d)


def test_a_scheduled_pod_is_marked_terminating_with_its_grace(writer):
    writer.create(pod(terminationGracePeriodSeconds=7))
    got = writer.delete("Pod", "default", "p")
    assert got.deletion_timestamp and got.metadata["deletionGracePeriodSeconds"] == 7
    assert writer.store.get("Pod", "default", "p").deletion_timestamp == got.deletion_timestamp
    writer.create(pod("q"))
    assert writer.delete("Pod", "default", "q").metadata["deletionGracePeriodSeconds"] == 30


@pytest.mark.parametrize("p", [pod(node=""), pod(terminationGracePeriodSeconds=0)])
def test_nothing_to_stop_or_no_grace_deletes_at_once(writer, p):
    writer.create(p)
    writer.delete("Pod", "default", "p")
    with pytest.raises(NotFound):
        writer.store.get("Pod", "default", "p")


def test_a_finished_pod_goes_at_once(writer):
    created = writer.create(pod())
    writer.update_status(created.with_status({"phase": "Succeeded"}))
    writer.delete("Pod", "default", "p")
    with pytest.raises(NotFound):
        writer.store.get("Pod", "default", "p")


def test_second_delete_only_shortens_and_grace_zero_finalizes(writer):
    writer.create(pod())
    first = writer.delete("Pod", "default", "p", grace_period=20)
    assert writer.delete("Pod", "default", "p", grace_period=60).raw == first.raw  # never longer
    shorter = writer.delete("Pod", "default", "p", grace_period=5)
    assert shorter.metadata["deletionGracePeriodSeconds"] == 5
    assert shorter.deletion_timestamp < first.deletion_timestamp
    writer.delete("Pod", "default", "p", grace_period=0)
    with pytest.raises(NotFound):
        writer.store.get("Pod", "default", "p")


def test_delete_refuses_negative_grace_and_stale_revision(writer):
    live = writer.create(pod())
    with pytest.raises(BadRequest):
        writer.delete("Pod", "default", "p", grace_period=-2)
    writer.update_status(live.with_status({"phase": "Running"}))
    with pytest.raises(Conflict):
        writer.delete("Pod", "default", "p", revision=live.resource_version)
    assert not writer.store.get("Pod", "default", "p").deletion_timestamp


def test_an_update_keeps_a_pod_terminating(writer):
    writer.create(pod())
    marked = writer.delete("Pod", "default", "p")
    d = pod().to_dict()
    d["metadata"]["labels"] = {"x": "y"}
    after = writer.update(from_dict(d), revision=0)
    assert after.labels == {"x": "y"}
    assert after.deletion_timestamp == marked.deletion_timestamp
    assert after.metadata["deletionGracePeriodSeconds"] == 30


def test_a_namespace_waits_for_its_ending_pods(writer):
    writer.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}))
    p = pod().to_dict()
    p["metadata"]["namespace"] = "ns1"
    writer.create(from_dict(p))
    writer.create(from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ns1"},
                             "spec": {"ports": [{"port": 80}]}}))
    ns = writer.delete("Namespace", "", "ns1")
    assert writer.store.get("Pod", "ns1", "p").deletion_timestamp
    with pytest.raises(NotFound):
        writer.store.get("Service", "ns1", "s")  # the rest of its content goes at once
    assert ns.deletion_timestamp and ns.status["phase"] == "Terminating"
    assert writer.store.get("Namespace", "", "ns1").deletion_timestamp
    q = pod("q").to_dict()
    q["metadata"]["namespace"] = "ns1"
    with pytest.raises(Forbidden, match="because it is being terminated"):
        writer.create(from_dict(q))
    writer.delete("Pod", "ns1", "p", grace_period=0)  # its kubelet's last step
    with pytest.raises(NotFound):
        writer.store.get("Namespace", "", "ns1")  # went with its last pod


def test_a_namespace_without_ending_pods_goes_at_once(writer):
    writer.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns2"}}))
    p = pod(node="").to_dict()
    p["metadata"]["namespace"] = "ns2"
    writer.create(from_dict(p))
    writer.delete("Namespace", "", "ns2")
    with pytest.raises(NotFound):
        writer.store.get("Namespace", "", "ns2")


def test_a_terminating_pod_neither_counts_nor_is_deleted_again(writer):
    dep = writer.create(from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    made = deployment_plan(dep, []).create
    for p in made:
        writer.create(from_dict({**p.to_dict(), "spec": {**p.spec, "nodeName": "n1"}}))
    writer.delete("Pod", "default", made[0].name)
    pods = writer.store.list("Pod", "default").items
    plan = deployment_plan(dep, pods)
    assert len(plan.create) == 1 and not plan.delete  # the replacement starts at once
    assert plan.create[0].name not in {p.name for p in pods}
    assert plan.status["replicas"] == 1


def test_pre_stop_hooks_and_grace_of_a_pod():
    assert termination.pre_stop(pod()) is None
    sleep = pod(containers=[{"name": "c", "image": "x", "lifecycle": {"preStop": {"sleep": {"seconds": 2}}}}])
    assert termination.pre_stop(sleep) == termination.PreStop(sleep=2.0)
    ex = pod(containers=[{"name": "c", "image": "x",
                          "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "true"]}}}}])
    assert termination.pre_stop(ex) == termination.PreStop(command=("sh", "-c", "true"))
    assert termination.grace_of(pod()) == 30
    assert termination.grace_of(pod(terminationGracePeriodSeconds=3)) == 3
    marked = pod(terminationGracePeriodSeconds=3).with_metadata(deletionGracePeriodSeconds=1)
    assert termination.grace_of(marked) == 1  # type: ignore[arg-type]
