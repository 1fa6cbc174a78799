"""Strategic merge patch against Kubernetes' documented behaviour.

Cases from "Update API Objects in Place Using kubectl patch" (kubernetes.io/docs/tasks/
manage-kubernetes-objects/update-api-object-kubectl-patch/) and the strategic merge patch
design doc (sig-api-machinery/strategic-merge-patch.md).
"""
from __future__ import annotations

import pytest

from podnet.apiserver.jsonpatch import merge_patch
from podnet.apiserver.smp import SmpError, strategic_merge


def deployment(containers, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "patch-demo"},
            "spec": {"replicas": 2, **spec, "template": {"metadata": {"labels": {"app": "nginx"}},
                                                         "spec": {"containers": containers}}}}


def containers_of(d):
    return d["spec"]["template"]["spec"]["containers"]


def test_containers_merge_by_name_where_a_merge_patch_replaces():
    live = deployment([{"name": "patch-demo-ctr", "image": "nginx"}])
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}}
    assert containers_of(strategic_merge(live, patch, "Deployment")) == [
        {"name": "patch-demo-ctr", "image": "nginx"}, {"name": "patch-demo-ctr-2", "image": "redis"}]
    assert containers_of(merge_patch(live, patch)) == [{"name": "patch-demo-ctr-2", "image": "redis"}]


def test_same_name_merges_the_element_and_its_ports_by_container_port():
    live = deployment([{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}]}])
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "nginx:2", "ports": [{"containerPort": 443, "name": "https"}]}]}}}}
    out = containers_of(strategic_merge(live, patch, "Deployment"))
    assert out == [{"name": "c", "image": "nginx:2",
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}]}]


def test_tolerations_have_no_strategy_so_the_list_is_replaced():
    live = deployment([{"name": "c", "image": "nginx"}])
    live["spec"]["template"]["spec"]["tolerations"] = [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]
    patch = {"spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}}}
    out = strategic_merge(live, patch, "Deployment")
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]


def test_retain_keys_clears_what_is_not_listed():
    live = deployment([{"name": "c", "image": "nginx"}],
                      strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    out = strategic_merge(live, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_patch_delete_removes_the_element_with_that_key():
    live = deployment([{"name": "nginx", "image": "nginx"}, {"name": "log", "image": "busybox"}])
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "$patch": "delete"}]}}}}
    assert containers_of(strategic_merge(live, patch, "Deployment")) == [{"name": "log", "image": "busybox"}]


def test_patch_replace_in_a_list_replaces_the_list():
    live = deployment([{"name": "nginx", "image": "nginx"}, {"name": "log", "image": "busybox"}])
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}]}}}}
    assert containers_of(strategic_merge(live, patch, "Deployment")) == [{"name": "nginx", "image": "nginx-1.0"}]


def test_patch_replace_and_delete_on_maps():
    live = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"selector": {"x": "y"}}}
    out = strategic_merge(live, {"metadata": {"labels": {"c": "3", "$patch": "replace"}}}, "Service")
    assert out["metadata"]["labels"] == {"c": "3"}
    out = strategic_merge(live, {"spec": {"selector": {"$patch": "delete"}}}, "Service")
    assert "selector" not in out["spec"]


def test_null_deletes_a_field_and_finalizers_are_a_set():
    live = {"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}}
    out = strategic_merge(live, {"metadata": {"finalizers": ["b", "c"], "labels": {"x": None}}}, "Pod")
    assert out["metadata"] == {"finalizers": ["a", "b", "c"], "labels": {"y": "2"}}
    out = strategic_merge(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Pod")
    assert out["metadata"]["finalizers"] == ["b"]


def test_service_ports_merge_by_port_and_element_order_is_kept_as_asked():
    live = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    patch = {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}],
                      "ports": [{"port": 80, "targetPort": 8080}]}}
    out = strategic_merge(live, patch, "Service")
    assert out["spec"]["ports"] == [{"port": 443, "name": "https"}, {"port": 80, "name": "http", "targetPort": 8080}]


def test_a_merge_list_element_without_its_key_is_refused():
    with pytest.raises(SmpError):
        strategic_merge({"spec": {"ports": []}}, {"spec": {"ports": [{"name": "x"}]}}, "Service")
    with pytest.raises(SmpError):
        strategic_merge({}, {"$patch": "sideways"}, "Pod")


def test_the_input_is_not_edited():
    live = deployment([{"name": "c", "image": "nginx"}])
    before = repr(live)
    strategic_merge(live, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}, "Deployment")
    assert repr(live) == before
