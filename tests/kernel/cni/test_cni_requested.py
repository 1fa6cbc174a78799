"""Requested addresses, as runtimes pass them (the `ips` capability, args.cni.ips,
CNI_ARGS IP=), on the real kernel, through the plugin binaries and the node daemon."""
from __future__ import annotations

import pytest

from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.dataplane.net.podwire import host_ifname

from cnilab import CNI_PATH

pytestmark = pytest.mark.root


def _ips(result):
    return sorted(i["address"] for i in result["ips"])


def test_pod_gets_the_addresses_it_asked_for(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    p, q = lab.netns("p"), lab.netns("q")
    r = runtime.add(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node,
                    capability_args={"ips": ["10.244.77.7/32", "fd00:10:244::77"], "portMappings": []})
    assert _ips(r) == ["10.244.77.7/32", "fd00:10:244::77/128"]
    addrs = lab.sh(p, "ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert "10.244.77.7/32" in addrs and "fd00:10:244::77/128" in addrs
    # a neighbour with an automatic address reaches it over both families
    r2 = runtime.add(nc, "c2", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node, cni_args="IP=10.244.77.8")
    assert "10.244.77.8/32" in _ips(r2)
    assert lab.ping(q, "10.244.77.7") and lab.ping(q, "fd00:10:244::77")
    runtime.delete(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    assert not any(a.endswith("/c1/eth0") for a in lab.allocations())


def test_an_address_in_use_or_outside_the_pools_is_refused_and_leaves_nothing(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    r = runtime.add(nc, "c1", lab.path(lab.netns("p")), "eth0", CNI_PATH, node_netns=lab.node,
                    cni_args="IgnoreUnknown=1;IP=10.244.9.9")
    before = lab.allocations()
    q = lab.netns("q")
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c2", "CNI_NETNS": lab.path(q), "CNI_IFNAME": "eth0"}
    for extra, stdin, code, needle in [
        ({"CNI_ARGS": "IP=10.244.9.9"}, nc, 11, "10.244.9.9 is already allocated to n1/"),
        ({}, {**nc, "args": {"cni": {"ips": ["192.0.2.9"]}}}, 7, "192.0.2.9 is in no enabled IPv4 IPPool"),
        ({}, {**nc, "runtimeConfig": {"ips": ["10.244.0.0"]}}, 7, "network or broadcast address"),
        ({"CNI_ARGS": "IP=10.244.9.10,10.244.9.11"}, nc, 4, "a second IPv4 address"),
        ({"CNI_ARGS": "IP=ten"}, nc, 4, "invalid CNI_ARGS IP='ten'"),
    ]:
        rc, doc, _ = lab.raw("podnet-cni", {**env, **extra}, stdin)
        assert rc == 1 and doc["code"] == code and needle in doc["msg"] + doc.get("details", ""), doc
        assert lab.allocations() == before
        assert host_ifname("c2", "eth0") not in lab.sh(lab.node, "ip", "-o", "link").stdout
        assert "eth0" not in lab.sh(q, "ip", "-o", "link").stdout
    # once its holder is gone, the address can be had
    runtime.delete(nc, "c1", lab.path(lab.netns("p2")), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    r2 = runtime.add(nc, "c2", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node, cni_args="IP=10.244.9.9")
    assert "10.244.9.9/32" in _ips(r2)
