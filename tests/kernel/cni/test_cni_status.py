"""STATUS on the real kernel: code 51 when pods already attached on the node are cut off
(forwarding off, host end down or without its routes), 50 from IPAM otherwise."""
from __future__ import annotations

import pytest

from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.dataplane.net.podwire import host_ifname

from cnilab import CNI_PATH, pool

pytestmark = pytest.mark.root


def _status(lab, nc):
    rc, doc, err = lab.raw("podnet-cni", {"CNI_COMMAND": "STATUS"}, nc)
    assert (rc == 0) == (doc is None), (rc, doc, err)
    return rc, doc or {}


def _ips(result):
    return {4 if ":" not in i["address"] else 6: i["address"].split("/")[0] for i in result["ips"]}


def _add(lab, nc, cid):
    p = lab.netns(cid)
    return p, _ips(runtime.add(nc, cid, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node))


@pytest.mark.parametrize("family,sysctl", [(4, "net.ipv4.ip_forward"), (6, "net.ipv6.conf.all.forwarding")])
def test_forwarding_off_with_pods_attached_is_51(dual_lab, family, sysctl):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    p1, _ = _add(lab, nc, "c1")
    _, ips2 = _add(lab, nc, "c2")
    assert _status(lab, nc) == (0, {})
    assert lab.ping(p1, ips2[family])

    lab.sh(lab.node, "sysctl", "-qw", f"{sysctl}=0")
    assert not lab.ping(p1, ips2[family])  # what 51 says: the pods are cut off
    rc, doc = _status(lab, nc)
    assert rc == 1 and doc["code"] == 51, doc
    assert sysctl in doc["msg"] and "2 IPv" in doc["msg"] and "'podnet'" in doc["msg"]
    assert f"sysctl -w {sysctl}=1" in doc["details"]

    lab.sh(lab.node, "sysctl", "-qw", f"{sysctl}=1")
    assert _status(lab, nc) == (0, {})
    assert lab.ping(p1, ips2[family])


def test_host_end_down_is_51_and_stays_so_until_the_pod_is_added_again(lab):
    lab.store.create(pool("v4", "10.244.0.0/16"))
    nc = make_netconf(lab.url, "n1", False)
    p1, _ = _add(lab, nc, "c1")
    p2, ips2 = _add(lab, nc, "c2")
    host = host_ifname("c1", "eth0")
    assert _status(lab, nc) == (0, {}) and lab.ping(p1, ips2[4])

    lab.sh(lab.node, "ip", "link", "set", host, "down")
    assert not lab.ping(p1, ips2[4])
    rc, doc = _status(lab, nc)
    assert rc == 1 and doc["code"] == 51, doc
    assert f"host end {host} of pod c1/eth0 is down" in doc["msg"] and "c2" not in doc["msg"]
    assert "DEL and ADD" in doc["details"]

    # Taking the link down flushed the pod's route: up again, the pod is still cut off.
    lab.sh(lab.node, "ip", "link", "set", host, "up")
    assert not lab.ping(p1, ips2[4])
    rc, doc = _status(lab, nc)
    assert rc == 1 and doc["code"] == 51 and f"{host} of pod c1/eth0 has no route" in doc["msg"], doc

    runtime.delete(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    assert _status(lab, nc) == (0, {}) and lab.ping(p1, ips2[4])


def test_forwarding_off_without_pods_is_not_51_and_51_wins_over_50(lab):
    nc = make_netconf(lab.url, "n1", False)
    lab.sh(lab.node, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    rc, doc = _status(lab, nc)  # no pool, no pod: IPAM's 50, nothing cut off
    assert rc == 1 and doc["code"] == 50, doc

    lab.store.create(pool("tiny", "10.50.0.0/30", blockSize=30))  # 2 usable addresses
    other = make_netconf(lab.url, "n1", False, name="other")
    _add(lab, other, "o1")
    lab.sh(lab.node, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    assert _status(lab, nc) == (0, {})  # the pod off the node's forwarding is another network's
    rc, doc = _status(lab, other)
    assert rc == 1 and doc["code"] == 51 and "'other'" in doc["msg"], doc

    _add(lab, nc, "c1")  # the pool is full now: 50 for both networks, unless 51 applies
    rc, doc = _status(lab, nc)
    assert rc == 1 and doc["code"] == 50, doc
    lab.sh(lab.node, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    rc, doc = _status(lab, nc)
    assert rc == 1 and doc["code"] == 51 and "net.ipv4.ip_forward" in doc["msg"], doc
