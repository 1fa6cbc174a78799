"""`podnet controllers` on the Kubernetes datastore (issue 15 §1): in a real cluster
kube-controller-manager keeps EndpointSlices, so podnet runs Calico kube-controllers' set:
IPAM garbage collection, node cleanup, LoadBalancer addresses. The real command, as its own
process, against a `podnet apiserver` process over SQLite; nothing else writes. No root."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from podnet.api.objects import from_dict
from podnet.datastore.interface import open_datastore
from podnet.ipam.allocator import Allocator, Request
from podnet.ipam.blocks import Handle

pytestmark = pytest.mark.kubernetes
GRACE = 2.0


def obj(kind: str, name: str, spec: dict, ns: str = "", api: str = "v1", **meta):
    md = {"name": name, **({"namespace": ns} if ns else {}), **meta}
    return from_dict({"apiVersion": api, "kind": kind, "metadata": md, "spec": spec})


def start_pod(api, name: str, node: str):
    pod = api.create(obj("Pod", name, {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
                         "default", labels={"app": name}))
    [got] = Allocator(api, node).assign(Request(Handle(node, "podnet", pod.uid, "eth0"), (4,)))
    pod = api.get("Pod", "default", name)
    api.update(pod.with_status({"phase": "Running", "podIP": str(got.address),
                                "podIPs": [{"ip": str(got.address)}],
                                "conditions": [{"type": "Ready", "status": "True"}]}))
    return str(got.address)


def held(api) -> dict[str, str]:
    """address -> the node of the block it is in"""
    return {str(a): b.node for b in Allocator(api, "").blocks() for a in b.addresses_of(lambda h: True)}


def test_the_controllers_of_a_real_cluster_and_only_those(kube, tmp_path):
    api = open_datastore(kube.url)
    log = tmp_path / "controllers.log"
    proc = None
    try:
        api.create(obj("IPPool", "v4", {"cidr": "10.9.0.0/24", "blockSize": 28}, api="podnet.io/v1"))
        api.create(obj("IPPool", "lb", {"cidr": "192.0.2.0/28", "allowedUses": ["LoadBalancer"]},
                       api="podnet.io/v1"))
        for n in ("n1", "n2"):
            api.create(obj("Node", n, {}, api="podnet.io/v1"))
        live = start_pod(api, "web", "n1")
        old = start_pod(api, "old", "n1")
        gone = start_pod(api, "far", "n2")
        n2_blocks = {str(b.cidr) for b in Allocator(api, "").blocks() if b.node == "n2"}
        api.create(obj("Service", "web", {"selector": {"app": "web"}, "ports": [{"port": 80}]}, "default"))
        api.create(obj("Service", "lb", {"type": "LoadBalancer", "selector": {"app": "web"},
                                         "ports": [{"port": 80}]}, "default"))
        api.delete("Pod", "default", "old")    # no CNI DEL: its address leaked
        api.delete("Node", "", "n2")           # a node removed: its pods' addresses and blocks
        assert {old, gone, live} <= set(held(api))
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "podnet.cli.main", "--datastore", kube.url, "controllers",
                 "--gc-grace", str(GRACE), "--gc-interval", "0.3"],
                stdout=out, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        deadline = started + 60
        while True:
            now = held(api)
            assert now.get(live) == "n1", "a live pod's address was freed"
            n2_left = {str(b.cidr) for b in Allocator(api, "").blocks() if b.node == "n2"}
            ingress = (api.get("Service", "default", "lb").status.get("loadBalancer") or {}).get("ingress")
            if old not in now and gone not in now and not n2_left and ingress:
                break
            assert time.monotonic() < deadline and proc.poll() is None, (now, n2_left, ingress,
                                                                          log.read_text()[-3000:])
            time.sleep(0.2)
        assert time.monotonic() - started >= GRACE * 0.9   # nothing freed before the grace
        first = log.read_text().splitlines()[0]
        assert first == "running: IpamGarbageCollector, NodeCleanup, LoadBalancerController", first
        assert n2_blocks and ingress[0]["ip"].startswith("192.0.2.")
        # kube-controller-manager's job, not podnet's here: no EndpointSlice was written
        assert api.list("EndpointSlice", "default").items == []
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        api.close()
