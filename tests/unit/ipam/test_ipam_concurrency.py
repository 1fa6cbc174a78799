"""Never a duplicate address: 400+ ADDs from 4 simulated nodes in 8 parallel processes,
through the podnet-ipam plugin's own entry (skeleton, env, stdin), on SQLite and etcd."""
from __future__ import annotations

import io
import ipaddress
import json
import multiprocessing as mp
import os

import pytest

from needs import missing

from podnet.api.objects import from_dict
from podnet.datastore.etcd import EtcdDatastore
from podnet.datastore.etcd_server import EtcdServer
from podnet.ipam.blocks import Block

ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")

NODES = ("n1", "n2", "n3", "n4")
PER_WORKER = 52  # 8 workers -> 416 ADDs


def _netconf(url, node):
    return {"cniVersion": "1.1.0", "name": "k8s", "type": "podnet-cni",
            "ipam": {"type": "podnet-ipam", "datastore": url, "nodeName": node,
                     "assign_ipv4": "true", "assign_ipv6": "true"}}


def _call(url, node, verb, cid):
    from podnet.cni import ipam_plugin, skel
    out = io.StringIO()
    env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0",
           "CNI_NETNS": "/var/run/netns/x", "CNI_PATH": "/nonexistent"}
    rc = skel.run(ipam_plugin.HANDLERS, env, json.dumps(_netconf(url, node)).encode(), out, io.StringIO())
    return rc, (json.loads(out.getvalue()) if out.getvalue() else None)


def _worker(args):
    url, node, verb, cids = args
    out = []
    for cid in cids:
        rc, doc = _call(url, node, verb, cid)
        out.append((node, cid, rc, doc))
    return out


def _run(url, verb, jobs):
    with mp.get_context("spawn").Pool(len(jobs)) as p:
        return [r for chunk in p.map(_worker, [(url, n, verb, c) for n, c in jobs]) for r in chunk]


def _jobs():
    # Two workers per node, so a node also races with itself (same block, CAS conflicts).
    return [(n, [f"{n}-w{w}-{i}" for i in range(PER_WORKER)]) for n in NODES for w in (0, 1)]


def _blocks(store):
    return [Block.from_resource(r) for r in store.list("IPAMBlock").items]


def _exercise(store, url):
    # IPv4: 2 blocks of 256 for 4 nodes and 416 pods: two nodes claim them, the other two
    # must borrow. IPv6: blocks of 32, so every node claims several.
    store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v4"},
                            "spec": {"cidr": "10.80.0.0/23", "blockSize": 24}}))
    store.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": "v6"},
                            "spec": {"cidr": "fd00:80::/118", "blockSize": 123}}))
    results = _run(url, "ADD", _jobs())
    assert len(results) == 8 * PER_WORKER >= 400
    bad = [r for r in results if r[2] != 0]
    assert not bad, bad[:3]
    addrs = [i["address"].split("/")[0] for r in results for i in r[3]["ips"]]
    assert len(addrs) == 2 * len(results) and len(set(addrs)) == len(addrs), "duplicate address"
    # Every address is recorded once, under its owner's handle, in a block of its pool.
    blocks = _blocks(store)
    where = {}
    for b in blocks:
        for o, h in b.allocations.items():
            where[str(b.cidr[o])] = (h, b)
    assert len(where) == len(addrs)
    borrowed = 0
    for node, cid, _, doc in results:
        for i in doc["ips"]:
            h, b = where[i["address"].split("/")[0]]
            assert h == f"{node}/k8s/{cid}/eth0"
            assert ipaddress.ip_address(i["address"].split("/")[0]) in b.cidr
            borrowed += b.node != node
    v4_blocks = [b for b in blocks if b.cidr.version == 4]
    assert len(v4_blocks) == 2 and borrowed > 0  # borrowing only once every block is claimed
    assert all(b.node for b in blocks)
    assert len([b for b in blocks if b.cidr.version == 6]) >= 4 * 4
    # DEL everything (from the owning node), twice: nothing stays allocated.
    for _ in range(2):
        results = _run(url, "DEL", _jobs())
        assert all(r[2] == 0 for r in results)
    assert all(not b.allocations for b in _blocks(store))


@pytest.mark.slow
def test_parallel_adds_sqlite(tmp_path):
    from podnet.datastore.sqlite import SqliteDatastore
    url = f"sqlite:///{tmp_path}/conc.db"
    store = SqliteDatastore(url)
    try:
        _exercise(store, url)
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.etcd
def test_parallel_adds_etcd(tmp_path):
    if not os.path.exists(ETCD_BIN):
        missing(f"etcd binary not found at {ETCD_BIN} (install Debian's etcd-server)")
    with EtcdServer(str(tmp_path / "etcd"), binary=ETCD_BIN) as srv:
        url = srv.datastore_url("/pn-cni")
        store = EtcdDatastore(url)
        try:
            _exercise(store, url)
        finally:
            store.close()


@pytest.mark.slow
@pytest.mark.kubernetes
def test_parallel_adds_kubernetes(tmp_path):
    """Through the API (issue 15 §4): the IPAM's blocks are custom resources of a `podnet
    apiserver` process, every CAS a PUT with the resourceVersion read."""
    from datastore.kube_server import KubeApiServer
    from podnet.datastore.interface import open_datastore
    server = KubeApiServer(tmp_path)
    server.start()
    try:
        store = open_datastore(server.url)
        try:
            _exercise(store, server.url)
        finally:
            store.close()
    finally:
        server.stop()
