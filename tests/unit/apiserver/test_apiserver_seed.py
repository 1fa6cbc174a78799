"""The lab's seeding goes through the one write path: what it writes is admitted like any
user's object, so kube-dns's ClusterIP is recorded as allocated and nobody else gets it."""
from __future__ import annotations

import pytest

from podnet.api.objects import from_dict
from podnet.datastore.interface import open_datastore
from podnet.lab.topology import make_spec
from podnet.lab.up import seed


@pytest.fixture
def store(tmp_path):
    s = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    yield s
    s.close()


def _service(cluster_ip: str):
    return from_dict({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "mine", "namespace": "default"},
                      "spec": {"clusterIP": cluster_ip, "ports": [{"port": 53, "protocol": "UDP"}]}})


@pytest.mark.parametrize("dual_stack", [False, True])
def test_kube_dns_address_is_allocated_after_seeding(store, dual_stack):
    from podnet.apiserver.errors import Invalid
    from podnet.apiserver.write import Writer
    seed(store, make_spec("seedtest", dual_stack=dual_stack))
    with pytest.raises(Invalid) as e:
        Writer(store).create(_service("10.96.0.10"))
    assert "spec.clusterIPs" in str(e.value) or "spec.clusterIP" in str(e.value)
    assert "10.96.0.10" in str(e.value)
    # and nothing was written
    assert [s.name for s in store.list("Service", "default").items] == ["kubernetes"]  # the seeded one only


def test_seeding_twice_changes_nothing(store):
    spec = make_spec("seedtest", dual_stack=True)
    seed(store, spec)
    rev = store.revision()
    seed(store, spec)
    assert store.revision() == rev


def test_podnet_apply_refuses_kube_dns_address(tmp_path, monkeypatch, capsys):
    from podnet.cli.main import main
    url = f"sqlite://{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PODNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PODNET_DATASTORE", url)
    s = open_datastore(url)
    try:
        seed(s, make_spec("seedtest"))
    finally:
        s.close()
    f = tmp_path / "svc.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: mine}\n"
                 "spec: {clusterIP: 10.96.0.10, ports: [{port: 53, protocol: UDP}]}\n")
    rc = main(["apply", "-f", str(f)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "10.96.0.10" in err and "kube-system/kube-dns" in err
