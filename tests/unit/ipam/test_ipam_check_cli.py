"""`podnet ipam check` and `podnet ipam release` against a real SQLite store in a temp dir."""
from __future__ import annotations

import ipaddress
import json

import pytest

from podnet.api.objects import from_dict
from podnet.cli.main import main
from podnet.datastore.sqlite import SqliteDatastore
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.blocks import Handle


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.setenv("PODNET_HOME", str(tmp_path / "home"))
    u = f"sqlite:///{tmp_path}/check.db"
    monkeypatch.setenv("PODNET_DATASTORE", u)
    return u


def cluster(url, leaked=True):
    """Nodes n1, n2; pod web on n1 with an allocated address; optionally a leaked address of a
    deleted pod on n1, one of vanished node n3, and one of another network."""
    s = SqliteDatastore(url)
    s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                        "spec": {"cidr": "10.9.0.0/24", "blockSize": 28}}))
    for n in ("n1", "n2"):
        s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": n}}))
    web = s.create(from_dict({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": "web", "namespace": "default"},
                              "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}))
    [got] = Allocator(s, "n1").assign(Request(Handle("n1", "podnet", web.uid, "eth0"), (4,)))
    st = dict(web.raw)
    st["status"] = {"podIPs": [{"ip": str(got.address)}]}
    s.update(from_dict(st))
    out = {"web": str(got.address)}
    if leaked:
        for key, hd in (("dead", Handle("n1", "podnet", "deadbeef", "eth0")),
                        ("gone-node", Handle("n3", "podnet", "cafe", "eth0")),
                        ("other", Handle("n1", "k8s-pod-network", "x", "eth0"))):
            [a] = Allocator(s, hd.node).assign(Request(hd, (4,)))
            out[key] = str(a.address)
    s.close()
    return out


def held(url):
    s = SqliteDatastore(url)
    try:
        return {str(a) for b in Allocator(s, "").blocks() for a in b.addresses_of(lambda h: True)}
    finally:
        s.close()


def test_check_clean_cluster_exits_0(url, capsys):
    cluster(url, leaked=False)
    assert main(["ipam", "check"]) == 0
    out = capsys.readouterr().out
    assert "LEAKED" not in out and out.startswith("ok: 1 allocations: 1 live, 0 leaked")


def test_check_reports_leaks_and_missing_then_release_cleans_up(url, capsys):
    ips = cluster(url)
    s = SqliteDatastore(url)  # a pod whose address IPAM does not know
    s.create(from_dict({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "lost", "namespace": "default"},
                        "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "x"}]},
                        "status": {"podIPs": [{"ip": "10.9.0.200"}]}}))
    s.close()
    assert main(["ipam", "check"]) == 1
    out = capsys.readouterr().out
    assert "LEAKED ADDRESSES (2)" in out and "MISSING POD ADDRESSES (1)" in out
    assert f"{ips['dead']}" in out and "no pod with uid deadbeef" in out
    assert "node n3 does not exist" in out
    assert "default/lost   n2     10.9.0.200   not allocated in any block" in out
    assert "ADDRESSES OF UNKNOWN OWNER (1)" in out and "n1/k8s-pod-network/x/eth0" in out
    assert "node n3" in out and "node does not exist" in out  # n3's block
    assert "PROBLEMS: 4 allocations: 1 live, 2 leaked, 1 unknown owner; 1 pod addresses missing" in out

    assert main(["ipam", "check", "-o", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["clean"] is False
    assert sorted(a["address"] for a in doc["allocations"] if a["status"] == "leaked") == \
        sorted([ips["dead"], ips["gone-node"]])

    # A live pod's address is refused, and nothing else in the same call is released.
    assert main(["ipam", "release", ips["dead"], ips["web"]]) == 1
    err = capsys.readouterr().err
    assert f"{ips['web']} (pod default/web)" in err and "nothing released" in err
    assert held(url) == set(ips.values())

    assert main(["ipam", "release", ips["dead"], ips["gone-node"], "10.9.0.250"]) == 0
    out = capsys.readouterr().out
    assert f"released {ips['dead']} (was n1/podnet/deadbeef/eth0)" in out
    assert "10.9.0.250 is not allocated" in out
    assert held(url) == {ips["web"], ips["other"]}
    assert main(["ipam", "release-empty", "n3"]) == 0  # the vanished node's block, now empty
    gone_block = ipaddress.ip_network(f"{ips['gone-node']}/28", strict=False)
    assert capsys.readouterr().out == f"released {gone_block}\n"

    s = SqliteDatastore(url)
    s.delete("Pod", "default", "lost")
    s.close()
    assert main(["ipam", "check"]) == 0
    assert "ok: 2 allocations: 1 live, 0 leaked, 1 unknown owner" in capsys.readouterr().out


def test_release_force_frees_a_live_pods_address(url, capsys):
    ips = cluster(url, leaked=False)
    assert main(["ipam", "release", "--force", ips["web"]]) == 0
    assert f"released {ips['web']}" in capsys.readouterr().out
    assert held(url) == set()
    assert main(["ipam", "check"]) == 1  # the pod's address is now missing
    assert "MISSING POD ADDRESSES (1)" in capsys.readouterr().out


def test_release_bad_address_is_a_clear_error(url, capsys):
    cluster(url, leaked=False)
    assert main(["ipam", "release", "10.9.0.300"]) == 1
    assert capsys.readouterr().err.strip() == "error: '10.9.0.300' is not an IP address"


def test_release_keeps_an_address_whose_holder_changed(tmp_path):
    """The CAS checks the holder seen at check time: an address reused meanwhile is kept."""
    s = SqliteDatastore(f"sqlite:///{tmp_path}/x.db")
    try:
        s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                            "spec": {"cidr": "10.9.0.0/24", "blockSize": 28}}))
        a = Allocator(s, "n1", quarantine=0)  # the address is reused at once
        [old] = a.assign(Request(Handle("n1", "podnet", "old", "eth0"), (4,)))
        a.release(Handle("n1", "podnet", "old", "eth0"))
        [new] = a.assign(Request(Handle("n1", "podnet", "new", "eth0"), (4,)))
        assert new.address == old.address
        assert Allocator(s, "").release_held({old.address: "n1/podnet/old/eth0"}) == []
        assert Allocator(s, "").release_held({new.address: "n1/podnet/new/eth0"}) == [new.address]
    finally:
        s.close()
