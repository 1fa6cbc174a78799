"""The lab's `kubernetes` Service and its EndpointSlices, valid for the write path."""
from __future__ import annotations

from podnet.api.objects import from_dict
from podnet.api.validate import validate_object
from podnet.lab import incluster
from podnet.lab.topology import make_spec


def test_service_and_slices_point_at_the_api_server():
    objs = incluster.objects(make_spec("apit", 2, True))
    svc, v4, v6 = objs
    assert svc["spec"]["clusterIPs"] == ["10.96.0.1", "fd00:10:96::1"] and "selector" not in svc["spec"]
    assert svc["spec"]["ports"][0] == {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
    assert v4["endpoints"][0]["addresses"] == ["198.18.0.11"] and v6["endpoints"][0]["addresses"] == ["fd00:198:18::11"]
    assert all(o["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes" for o in (v4, v6))
    for o in objs:
        assert validate_object(from_dict(o)) == []
    assert len(incluster.objects(make_spec("apit", 1, False))) == 2


def test_containers_with_a_command_get_the_service_variables():
    from podnet.lab.containers import _env
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                     "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"],
                                              "env": [{"name": "KUBERNETES_SERVICE_PORT", "value": "8443"}]}]}})
    env = _env(pod, "c", "sqlite:///x.db")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_SERVICE_PORT"] == "8443"   # the container's own env wins, as in Kubernetes
