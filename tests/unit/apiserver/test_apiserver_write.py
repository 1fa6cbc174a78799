"""The write path's verbs: CAS, validation and admission on every writer's objects, and
delete with each propagation policy."""
from __future__ import annotations

import pytest

from podnet.api.objects import from_dict
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.errors import BadRequest, Forbidden, Invalid
from podnet.apiserver.write import Writer
from podnet.datastore.interface import Conflict, NotFound, open_datastore
from builders import make_service


@pytest.fixture
def writer(tmp_path):
    s = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    w = Writer(s)
    ensure_default_namespaces(w)
    yield w
    s.close()


def svc(name="web", **spec):
    return make_service("default", name, lambda d: d["spec"].update(spec), ip="", ports=[{"port": 80}])


def deployment(name="web"):
    return from_dict({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name, "namespace": "default"},
                      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                               "template": {"metadata": {"labels": {"app": name}},
                                            "spec": {"containers": [{"name": "c", "image": "x"}]}}}})


def pod_of(owner, name):
    return from_dict({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": "default",
                                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": owner.name, "uid": owner.uid}]},
                      "spec": {"containers": [{"name": "c", "image": "x"}]}})


def test_create_admits_and_update_keeps_the_allocated_address(writer):
    created = writer.create(svc())
    ip = created.spec["clusterIP"]
    assert ip.startswith("10.")
    spec = {k: v for k, v in created.spec.items() if k not in ("clusterIP", "clusterIPs")}
    updated = writer.update(created.with_spec(dict(spec, ports=[{"port": 81}])))
    assert updated.spec["clusterIP"] == ip and updated.spec["ports"][0]["port"] == 81


def test_stale_update_is_a_conflict_and_writes_nothing(writer):
    created = writer.create(svc())
    writer.update(created.with_metadata(labels={"a": "1"}))
    rev = writer.store.revision()
    with pytest.raises(Conflict):
        writer.update(created.with_metadata(labels={"a": "2"}))
    assert writer.store.revision() == rev


def test_invalid_names_the_field_with_the_cli_message(writer):
    with pytest.raises(Invalid) as e:
        writer.create(svc(ports=[{"port": 70000}]))
    assert [(c.path, c.message) for c in e.value.causes] == [("spec.ports[0].port", "70000 is not in 1..65535")]


def test_immutable_cluster_ip(writer):
    created = writer.create(svc())
    with pytest.raises(Invalid) as e:
        writer.update(created.with_spec(dict(created.spec, clusterIP="10.96.0.99", clusterIPs=["10.96.0.99"])))
    assert e.value.causes[0].path == "spec.clusterIP"


def test_create_in_a_missing_namespace_is_not_found(writer):
    d = svc().to_dict()
    d["metadata"]["namespace"] = "nope"
    with pytest.raises(NotFound, match='namespaces "nope" not found'):
        writer.create(from_dict(d))


@pytest.mark.parametrize("policy,kept", [("Background", False), ("Foreground", False), ("Orphan", True)])
def test_delete_propagation(writer, policy, kept):
    dep = writer.create(deployment())
    writer.create(pod_of(dep, "web-1"))
    writer.delete("Deployment", "default", "web", propagation=policy)
    pods = writer.store.list("Pod", "default").items
    assert [p.name for p in pods] == (["web-1"] if kept else [])
    if kept:
        assert "ownerReferences" not in pods[0].metadata


def test_delete_refusals(writer):
    with pytest.raises(Forbidden):
        writer.delete("Namespace", "", "kube-system")
    with pytest.raises(BadRequest):
        writer.delete("Service", "default", "web", propagation="Sideways")
    created = writer.create(svc())
    writer.update(created.with_metadata(labels={"a": "1"}))
    with pytest.raises(Conflict):
        writer.delete("Service", "default", "web", revision=created.resource_version)


def test_deleting_a_service_frees_its_address(writer):
    ip = writer.create(svc()).spec["clusterIP"]
    writer.delete("Service", "default", "web")
    assert writer.create(svc("other", clusterIP=ip)).spec["clusterIP"] == ip


def test_status_update_changes_only_status(writer):
    created = writer.create(svc())
    changed = created.with_metadata(labels={"x": "y"}).with_status({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})
    out = writer.update_status(changed)
    assert out.status["loadBalancer"]["ingress"][0]["ip"] == "1.2.3.4" and "x" not in out.labels
