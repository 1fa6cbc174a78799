"""Interop both ways, cniVersion 1.0.0 (what Debian's reference plugins speak): the
reference `bridge` plugin with podnet-ipam, and podnet-cni with the reference `host-local`."""
from __future__ import annotations

import os

import pytest

from podnet.cni import runtime

from cnilab import CNI_PATH, pool

pytestmark = pytest.mark.root


def test_reference_bridge_with_podnet_ipam(lab):
    lab.store.create(pool("br", "10.60.0.0/16"))
    nc = {"cniVersion": "1.0.0", "name": "brnet", "type": "bridge", "bridge": f"pnbr{lab.id}",
          "capabilities": {"ips": True},
          "ipam": {"type": "podnet-ipam", "datastore": lab.url, "nodeName": "n1",
                   "assign_ipv6": "false", "routes": [{"dst": "10.60.0.0/16"}]}}
    pods = {c: lab.netns(c) for c in ("a", "b")}
    # b asks for its address: bridge hands its whole config, runtimeConfig too, to IPAM
    res = {c: runtime.add(nc, c, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node,
                          capability_args={"ips": ["10.60.5.5"]} if c == "b" else None)
           for c, p in pods.items()}
    ips = {c: r["ips"][0]["address"].split("/")[0] for c, r in res.items()}
    assert ips["b"] == "10.60.5.5"
    assert all(r["ips"][0]["address"].endswith("/32") for r in res.values())
    assert all(ip.startswith("10.60.") for ip in ips.values()) and len(set(ips.values())) == 2
    assert lab.ping(pods["a"], ips["b"]) and lab.ping(pods["b"], ips["a"])
    assert lab.allocations() == {"n1/brnet/a/eth0", "n1/brnet/b/eth0"}
    for c, p in pods.items():
        runtime.delete(nc, c, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=res[c])
    assert lab.allocations() == set()


def test_podnet_cni_with_reference_host_local(lab, tmp_path):
    data = tmp_path / "host-local"
    nc = {"cniVersion": "1.0.0", "name": "hlnet", "type": "podnet-cni",
          "ipam": {"type": "host-local", "dataDir": str(data),
                   "ranges": [[{"subnet": "10.70.0.0/24"}], [{"subnet": "fd00:70::/64"}]]}}
    pods = {c: lab.netns(c) for c in ("a", "b")}
    # b asks for its address: podnet-cni hands CNI_ARGS on to host-local, as it must
    res = {c: runtime.add(nc, c, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node,
                          cni_args="IP=10.70.0.77" if c == "b" else "")
           for c, p in pods.items()}
    assert "10.70.0.77/32" in [i["address"] for i in res["b"]["ips"]]
    for fam in (4, 6):
        a, b = (next(i["address"].split("/")[0] for i in res[c]["ips"] if (":" in i["address"]) == (fam == 6))
                for c in ("a", "b"))
        assert lab.ping(pods["a"], b) and lab.ping(pods["b"], a)
    leases = [f for f in os.listdir(data / "hlnet") if f[0].isdigit() or ":" in f]
    assert len(leases) == 4
    for c, p in pods.items():
        runtime.delete(nc, c, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=res[c])
    assert [f for f in os.listdir(data / "hlnet") if f[0].isdigit() or ":" in f] == []
