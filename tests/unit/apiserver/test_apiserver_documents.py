"""Discovery, OpenAPI, Endpoints, Tables: what the server says. Pure."""
from __future__ import annotations

import json

from podnet.api.objects import from_dict
from podnet.apiserver import discovery, endpoints, openapi, table
from podnet.apiserver.resources import for_kind


def test_resource_lists_carry_verbs_short_names_and_subresources():
    core = {r["name"]: r for r in discovery.resource_list("", "v1")["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"]
    assert "watch" in core["pods"]["verbs"] and core["pods/status"]["kind"] == "Pod"
    assert core["nodes"]["namespaced"] is False and core["endpoints"]["verbs"] == ["get", "list", "watch"]
    apps = {r["name"]: r for r in discovery.resource_list("apps", "v1")["resources"]}
    assert apps["deployments/scale"]["group"] == "autoscaling" and apps["deployments/scale"]["kind"] == "Scale"
    groups = {g["name"] for g in discovery.api_group_list()["groups"]}
    assert groups == {"apps", "discovery.k8s.io", "networking.k8s.io", "policy.networking.k8s.io", "podnet.io",
                      "authorization.k8s.io", "authentication.k8s.io"}
    assert discovery.resource_list("apps", "v2") is None


def test_openapi_tags_every_path_and_offers_field_validation():
    root = json.loads(openapi.document("/openapi/v3"))
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = json.loads(openapi.document(url.split("?")[0]))
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert openapi.document("/openapi/v3/apis/apps/v9") is None


def slice_(name, svc, eps, port=8080):
    return from_dict({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                                   "labels": {"kubernetes.io/service-name": svc}},
                      "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                      "endpoints": eps})


def test_endpoints_from_slices():
    eps = endpoints.derive([
        slice_("web-a", "web", [{"addresses": ["10.0.0.2"], "conditions": {"ready": True}, "nodeName": "n1"},
                                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}}]),
        slice_("web-b", "web", [{"addresses": ["10.0.0.1"]}]),
        slice_("db-a", "db", [{"addresses": ["10.0.0.9"]}], 5432)])
    assert [e["metadata"]["name"] for e in eps] == ["db", "web"]
    web = eps[1]
    assert web["subsets"] == [{"ports": [{"port": 8080, "protocol": "TCP", "name": "http"}],
                               "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2", "nodeName": "n1"}],
                               "notReadyAddresses": [{"ip": "10.0.0.3"}]}]


def test_endpoints_table():
    eps = endpoints.derive([slice_("web-a", "web", [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)])])
    t = table.to_table({"kind": "EndpointsList", "items": eps}, for_kind("Endpoints"))
    assert t["rows"][0]["cells"][:2] == ["web", "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."]


def test_table_has_the_podnet_get_columns():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                    "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}}
    t = table.to_table({"kind": "ServiceList", "items": [svc], "metadata": {"resourceVersion": "3"}},
                       for_kind("Service"))
    names = [c["name"] for c in t["columnDefinitions"]]
    assert [n.upper() for n in names] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert [c["priority"] for c in t["columnDefinitions"]][-1] == 1
    assert t["rows"][0]["cells"][:5] == ["web", "ClusterIP", "10.96.0.5", "<none>", "80/TCP"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table.wanted("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not table.wanted("application/json")


def test_exec_status_and_refusals():
    import pytest

    from podnet.apiserver import exec_stream
    from podnet.apiserver.status import ApiStatus
    assert exec_stream.exit_status(0) == {"metadata": {}, "status": "Success"}
    st = exec_stream.exit_status(42)
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"] == [{"reason": "ExitCode", "message": "42"}]
    pod = {"metadata": {"name": "p", "annotations": {"podnet.io/netns": "pn-x-pdead"}},
           "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}}
    with pytest.raises(ApiStatus, match="not running"):
        exec_stream.netns_of(pod, "")
    with pytest.raises(ApiStatus, match="container d is not valid"):
        exec_stream.netns_of(pod, "d")
    pod["status"]["phase"] = "Running"
    with pytest.raises(ApiStatus, match="is gone"):
        exec_stream.netns_of(pod, "c")
    pod["metadata"]["annotations"]["podnet.io/netns"] = "../../etc"
    with pytest.raises(ApiStatus, match="is gone"):
        exec_stream.netns_of(pod, "c")


def test_logs_container_choice_and_tail():
    import pytest

    from podnet.apiserver import logs
    from podnet.apiserver.status import ApiStatus
    one = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
    two = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    assert logs.container_of(one, "") == "a" and logs.container_of(two, "b") == "b"
    with pytest.raises(ApiStatus, match="choose one of"):
        logs.container_of(two, "")
    with pytest.raises(ApiStatus, match="not valid"):
        logs.container_of(one, "z")
    data = b"1\n2\n3\n"
    assert logs.tail(data, 2, None) == b"2\n3\n" and logs.tail(data, 0, None) == b""
    assert logs.tail(data, None, 3) == b"1\n2" and logs.tail(data, None, None) == data


def test_aggregated_discovery():
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
    assert discovery.wants_aggregated(accept) and not discovery.wants_aggregated("application/json")
    core = discovery.aggregated(core=True)
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    pods = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["shortNames"] == ["po"]
    assert {s["subresource"] for s in pods["subresources"]} == {"status", "exec", "log"}
    apis = discovery.aggregated(core=False)
    apps = next(i for i in apis["items"] if i["metadata"]["name"] == "apps")
    dep = apps["versions"][0]["resources"][0]
    scale = next(s for s in dep["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "" not in {i["metadata"]["name"] for i in apis["items"]}
