"""kubectl's EXTERNAL-IP column for Services (getServiceExternalIP), issue 16 §2."""
from __future__ import annotations

from podnet.apiserver.columns import external_ip_column
from builders import make_service


def svc(**spec):
    status = spec.pop("status", None)
    s = make_service("default", "web", lambda d: d["spec"].update(spec))
    if status:
        s.raw["status"] = status
    return s


def test_external_ip_column_as_kubectl_shows_it():
    assert external_ip_column(svc()) == ""
    assert external_ip_column(svc(externalIPs=["192.0.2.1", "192.0.2.2"])) == "192.0.2.1,192.0.2.2"
    assert external_ip_column(svc(type="LoadBalancer")) == "<pending>"
    ingress = {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}, {"hostname": "lb.example"}]}}
    assert external_ip_column(svc(type="LoadBalancer", status=ingress)) == "198.51.100.1,lb.example"
    assert external_ip_column(svc(type="LoadBalancer", externalIPs=["192.0.2.1"], status=ingress)) == \
        "198.51.100.1,lb.example,192.0.2.1"
    assert external_ip_column(svc(type="ExternalName", externalName="example.org")) == "example.org"
