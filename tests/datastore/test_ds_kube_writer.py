"""The write path over the Kubernetes datastore (issue 15): the API server behind it
validates, admits (ClusterIPs, NodePorts), merges and cascades, as kube-apiserver does, so
`apiserver.write.Writer` passes writes through. Admitting on the client too allocated every
ClusterIP twice over (and, against a real kube-apiserver, into podnet's own allocation
kinds). A real `podnet apiserver` process over SQLite; in this, the client's, process the
admission, release and cascade functions are made to fail the test if they run. No root."""
from __future__ import annotations

import ipaddress

import pytest

from podnet.api.objects import from_dict
from podnet.apiserver import deleting, write
from podnet.apiserver.write import Writer
from podnet.datastore.common import InvalidObject
from podnet.datastore.interface import NotFound, open_datastore
from podnet.ipam.serviceips import IP_KIND, PORT_KIND

pytestmark = pytest.mark.kubernetes


@pytest.fixture
def writer(kube, monkeypatch):
    def client_side(*args, **kwargs):
        raise AssertionError("admission, release or cascade ran in the client")
    monkeypatch.setattr(write, "admit", client_side)
    monkeypatch.setattr(write, "release", client_side)
    monkeypatch.setattr(deleting, "delete_object", client_side)
    api = open_datastore(kube.url)
    try:
        yield Writer(api)
    finally:
        api.close()


def service(name: str, port: int = 80, **spec) -> object:
    return from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                      "spec": {"selector": {"app": name}, "ports": [{"port": port}], **spec}})


def test_the_server_allocates_once_and_the_client_not_at_all(writer):
    svc = writer.create(service("web", type="NodePort"))
    ip = svc.spec["clusterIP"]
    assert ipaddress.ip_address(ip) and svc.spec["ports"][0]["nodePort"] >= 30000
    ips = writer.store.list(IP_KIND).items
    assert [o.spec.get("service") for o in ips].count("default/web") == 1, [o.raw for o in ips]
    assert len(writer.store.list(PORT_KIND).items) == 1
    # the server's own admission refuses a taken address, its answer reaching the caller
    with pytest.raises(InvalidObject, match=ip):
        writer.create(service("copy", clusterIP=ip))
    assert [o.name for o in writer.store.list("Service", "default").items] == ["web"]


def test_apply_merges_and_keeps_what_the_server_allocated(writer):
    first = writer.apply(service("web"))
    assert first.action == "created"
    again = writer.apply(service("web", port=8080))
    assert again.action == "configured"
    assert again.after.spec["clusterIP"] == first.after.spec["clusterIP"]
    assert [p["port"] for p in again.after.spec["ports"]] == [8080]
    assert writer.apply(service("web", port=8080)).action == "unchanged"


def test_delete_is_the_servers_release_and_grace(writer):
    writer.create(service("web", type="NodePort"))
    gone = writer.delete("Service", "default", "web")
    assert gone.name == "web"
    assert not writer.store.list(IP_KIND).items and not writer.store.list(PORT_KIND).items
    with pytest.raises(NotFound):
        writer.store.get("Service", "default", "web")
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                     "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30,
                              "containers": [{"name": "c", "image": "x"}]}})
    writer.create(pod)
    marked = writer.delete("Pod", "default", "p")   # a scheduled pod: the server marks it
    assert marked.deletion_timestamp and writer.store.get("Pod", "default", "p").deletion_timestamp
    writer.delete("Pod", "default", "p", grace_period=0)
    with pytest.raises(NotFound):
        writer.store.get("Pod", "default", "p")
