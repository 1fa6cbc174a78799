"""What only the Kubernetes datastore has (issue 15 §1): podnet's own kinds served as
custom resources (their CRD schema checked, no admission), Kubernetes' kinds admitted as
the API admits them, and a kubeconfig that is not there named in the error."""
from __future__ import annotations

import os

import pytest

from podnet.api.objects import from_dict
from podnet.datastore.common import InvalidObject
from podnet.datastore.interface import AlreadyExists, Conflict, Unavailable, open_datastore
from podnet.datastore.kube_kinds import podnet_kinds
from podnet.ipam.blocks import Block, new_block
from podnet.ipam.cidr import parse_network

pytestmark = pytest.mark.kubernetes


@pytest.fixture
def kube(tmp_path):
    from kube_server import KubeApiServer
    server = KubeApiServer(tmp_path)
    server.start()
    store = open_datastore(server.url)
    try:
        yield store
    finally:
        store.close()
        server.stop()


def test_ipam_block_round_trip_with_cas(kube):
    b = new_block(parse_network("10.244.1.0/26", "cidr"), "default-ipv4", "n1")
    created = kube.create(b.to_resource())
    got = Block.from_resource(kube.get("IPAMBlock", "", created.name))
    assert (got.node, got.pool, got.allocations) == ("n1", "default-ipv4", {})
    raw = created.to_dict()
    raw["spec"]["allocations"] = {"0": "pod:default/a"}
    moved = kube.update(from_dict(raw))
    assert Block.from_resource(moved).allocations == {0: "pod:default/a"}
    with pytest.raises(Conflict):
        kube.update(from_dict(raw), revision=created.resource_version)
    assert kube.list("IPAMBlock").items == [moved]


def test_custom_resources_are_checked_against_their_crd_schema(kube):
    raw = new_block(parse_network("10.244.2.0/26", "cidr"), "p", "n1").to_resource().to_dict()
    raw["spec"]["allocations"] = {"0": 7}
    rev = kube.revision()
    with pytest.raises(InvalidObject, match="spec.allocations.0"):
        kube.create(from_dict(raw))
    assert kube.revision() == rev


def test_allocations_are_claimed_once(kube):
    alloc = from_dict({"apiVersion": "podnet.io/v1", "kind": "ServiceIPAllocation",
                       "metadata": {"name": "10.96.0.50"},
                       "spec": {"service": "default/web", "family": "IPv4"}})
    kube.create(alloc)
    with pytest.raises(AlreadyExists):
        kube.create(alloc)


def test_a_service_written_through_the_api_is_admitted(kube):
    svc = from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                     "spec": {"ports": [{"port": 80}]}})
    created = kube.create(svc)
    ip = created.spec["clusterIP"]
    assert ip and ip == created.spec["clusterIPs"][0]
    assert kube.get("ServiceIPAllocation", "", ip).spec["service"] == "default/web"


def test_every_podnet_kind_is_served(kube):
    for kk in podnet_kinds():
        assert kube.list(kk.kind).items == [], kk.kind


def test_bare_kubernetes_takes_kubeconfig_from_the_environment(tmp_path, monkeypatch):
    from kube_server import KubeApiServer
    server = KubeApiServer(tmp_path)
    server.start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
        store = open_datastore("kubernetes")   # PODNET_DATASTORE=kubernetes
        try:
            assert store.url == "kubernetes://"
            assert {"default", "kube-system"} <= {n.name for n in store.list("Namespace").items}
        finally:
            store.close()
    finally:
        server.stop()


def test_missing_kubeconfig_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    missing = tmp_path / "nope.yaml"
    with pytest.raises(Unavailable, match="nope.yaml"):
        open_datastore(f"kubernetes://?kubeconfig={missing}")
    # no kubeconfig anywhere and not in a pod: the in-cluster variables are missing
    for v in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(v, raising=False)
    if not os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        with pytest.raises(Unavailable, match="in-cluster"):
            open_datastore("kubernetes://")


def test_many_watches_resuming_after_a_restart_are_all_served(tmp_path):
    """After an API server restart every watch resumes from before it, older than the new
    server's cache, so each is the store's own watch on the server: many of them at once
    (two clients watching every kind) must not starve one another."""
    import threading

    from kube_server import KubeApiServer
    from builders import make_pod
    server = KubeApiServer(tmp_path)
    server.start()
    stores = []
    try:
        w = open_datastore(server.url)
        stores.append(w)
        start = w.revision()
        for i in range(3):
            w.create(make_pod("default", f"p{i}", []))
        server.restart()
        stop = threading.Event()
        got: dict[int, list[str]] = {0: [], 1: []}

        def watch(n: int) -> None:
            s = open_datastore(server.url)
            stores.append(s)
            for ev in s.watch(start, stop=stop):
                got[n].append(ev.object.name)
                if len(got[n]) == 3:
                    return

        threads = [threading.Thread(target=watch, args=(n,), daemon=True) for n in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        stop.set()
        assert got == {0: ["p0", "p1", "p2"], 1: ["p0", "p1", "p2"]}
    finally:
        for s in stores:
            s.close()
        server.stop()


def test_expired_credentials_are_read_again_from_the_kubeconfig(tmp_path):
    """A long-lived client (the CNI daemon, an agent) whose token expires and whose
    kubeconfig is rewritten with a new one (the install step's refresh, a projected token)
    carries on: a 401 makes it read the kubeconfig again, once. One whose file still holds
    the old token gets the 401 as an error."""
    import yaml
    from kube_server import KubeApiServer
    from podnet.datastore.interface import DatastoreError
    server = KubeApiServer(tmp_path)
    server.token_file = tmp_path / "tokens.csv"
    server.token_file.write_text('tok-a,alice,1,"system:masters"\n')

    def kubeconfig(name: str, token: str):
        cfg = yaml.safe_load(server.kubeconfig.read_text())
        cfg["users"][0]["user"] = {"token": token}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg))
        return path
    refreshed, stale = kubeconfig("refreshed", "tok-a"), kubeconfig("stale", "tok-a")
    server.start()
    a = open_datastore(f"kubernetes://?kubeconfig={refreshed}")
    b = open_datastore(f"kubernetes://?kubeconfig={stale}")
    try:
        assert a.get("Namespace", "", "default").name == b.get("Namespace", "", "default").name
        server.token_file.write_text('tok-b,alice,1,"system:masters"\n')   # tok-a expired
        kubeconfig("refreshed", "tok-b")
        server.restart()
        assert a.get("Namespace", "", "default").name == "default"
        with pytest.raises(DatastoreError, match="401"):
            b.get("Namespace", "", "default")
    finally:
        a.close()
        b.close()
        server.stop()
