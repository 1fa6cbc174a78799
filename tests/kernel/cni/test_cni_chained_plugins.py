"""podnet-cni first in a chain with the reference `tuning`, `portmap` and `bandwidth`
plugins (Debian's containernetworking-plugins), driven as libcni drives a conflist: ADD in
order, each plugin getting the result so far as prevResult and runtimeConfig for the
capabilities it declares; CHECK of the final result; DEL in reverse with the same
runtimeConfig (issue 12 §5). Real traffic, IPv4 and IPv6, after each plugin's ADD, and
nothing left after DEL. With and without the node daemon."""
from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.cni.errors import CniError
from podnet.dataplane.net.podwire import host_ifname

from cnilab import CNI_PATH

pytestmark = pytest.mark.root

NODE4, NODE6 = "192.0.2.1", "2001:db8::1"  # the node's own addresses (as a lab node's underlay)
TUNED_MAC = "0a:58:0a:f4:99:01"
HOST_PORT, POD_PORT = 18080, 8080
CAPS = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 200_000_000, "ingressBurst": 2_000_000,
                      "egressRate": 200_000_000, "egressBurst": 2_000_000}}
SERVE = """
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", %d))
s.listen(16)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(b"pod p answers\\n")
    c.close()
""" % POD_PORT
FETCH = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as c:
    print(c.recv(100).decode().strip())
"""


def _conflist(nc):
    own = {k: v for k, v in nc.items() if k not in ("cniVersion", "name")}
    return {"cniVersion": "1.0.0", "name": nc["name"], "plugins": [
        own,
        {"type": "tuning", "mac": TUNED_MAC},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    ]}


def _addr(result, family):
    return next(i["address"].split("/")[0] for i in result["ips"]
                if (":" in i["address"]) == (family == 6) and not i["address"].startswith("127."))


def _fetch(lab, ns, host, port):
    cp = subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", FETCH, host, str(port)],
                        capture_output=True, text=True, timeout=20)
    return cp.stdout.strip() if cp.returncode == 0 else cp.stderr.strip().splitlines()[-1:]


def _leftovers(lab, cid, pod_ips):
    """What a chain could leave in the node: links, rules, qdiscs, tuning's saved state."""
    links = lab.sh(lab.node, "ip", "-o", "link").stdout
    rules = lab.sh(lab.node, "nft", "list", "ruleset").stdout
    for tool in ("iptables-save", "ip6tables-save"):
        rules += lab.sh(lab.node, tool, check=False).stdout
    qdiscs = lab.sh(lab.node, "tc", "qdisc", "show").stdout
    out = []
    if host_ifname(cid, "eth0") in links:
        out.append("host end")
    out += [f"ifb {line.split(':')[1].strip()}" for line in links.splitlines() if "bwp" in line]
    out += [f"rule naming {x}" for x in (str(HOST_PORT), cid, *pod_ips) if x in rules]
    out += [f"qdisc {line}" for line in qdiscs.splitlines() if " tbf " in line or " ingress " in line]
    out += [f"tuning state {p}" for p in glob.glob(f"/run/cni/tuning/*{cid}*")]
    return out


def _like_a_node(lab):
    """The test node namespace gets what every real node has: addresses of its own (to
    talk to pods from) and an uplink with the default route. Proxy ARP answers a pod's
    ARP for 169.254.1.1 only when the node routes that address elsewhere, and `tuning`'s
    MAC change flushes the pod's neighbour entries, static ones included, so after it the
    pod asks."""
    for addr in (f"{NODE4}/32", f"{NODE6}/128"):
        lab.sh(lab.node, "ip", "addr", "add", addr, "dev", "lo")
    lab.sh(lab.node, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer")
    for dev in ("uplink", "uplink-peer"):
        lab.sh(lab.node, "ip", "link", "set", dev, "up")
    lab.sh(lab.node, "ip", "route", "add", "default", "dev", "uplink")


def test_podnet_cni_chained_with_tuning_portmap_and_bandwidth(dual_lab):
    lab = dual_lab
    _like_a_node(lab)
    conflist = _conflist(make_netconf(lab.url, "n1", True))
    p, q = lab.netns("p"), lab.netns("q")
    server = subprocess.Popen(["ip", "netns", "exec", p, "/usr/bin/python3", "-c", SERVE],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        # a plain pod on the same node: traffic from another pod, and the hostPort's client
        rq = runtime.add(make_netconf(lab.url, "n1", True), "cq", lab.path(q), "eth0", CNI_PATH,
                         node_netns=lab.node)
        seen = []

        def after(plugin, result):
            seen.append(plugin)
            for fam in (4, 6):
                ip = _addr(result, fam)
                assert lab.ping(lab.node, ip), f"after {plugin}: the node cannot reach the pod's {ip}"
                assert lab.ping(q, ip), f"after {plugin}: another pod cannot reach {ip}"
            mac = json.loads(lab.sh(p, "ip", "-j", "link", "show", "dev", "eth0").stdout)[0]["address"]
            listed = next(i["mac"] for i in result["interfaces"] if i["name"] == "eth0" and i.get("sandbox"))
            assert mac == listed, f"after {plugin}: eth0 has {mac}, the result says {listed}"
            if plugin != "podnet-cni":
                assert mac == TUNED_MAC
            if plugin in ("portmap", "bandwidth"):
                for node_ip in (NODE4, NODE6):
                    got = _fetch(lab, q, node_ip, HOST_PORT)
                    assert got == "pod p answers", f"after {plugin}: {node_ip}:{HOST_PORT} -> {got}"
            if plugin == "bandwidth":
                assert " tbf " in lab.sh(lab.node, "tc", "qdisc", "show", "dev", host_ifname("c1", "eth0")).stdout

        r = runtime.add(conflist, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node,
                        capability_args=CAPS, after_each=after)
        assert seen == ["podnet-cni", "tuning", "portmap", "bandwidth"]
        pod_ips = [_addr(r, 4), _addr(r, 6)]
        # CHECK of the final result by every plugin but portmap, whose CHECK in Debian's
        # 1.1.1 looks for its IPv4 rules among the IPv6 ones and always fails
        # (containernetworking/plugins#819, fixed upstream after 1.2)
        checked = {**conflist, "plugins": [x for x in conflist["plugins"] if x["type"] != "portmap"]}
        runtime.check(checked, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node,
                      capability_args=CAPS)
        # a pinned neighbour with the pod's old MAC (what ADD wrote before) is found by CHECK
        old_mac = next(i["mac"] for i in rq["interfaces"] if i["name"] == "eth0")
        lab.sh(lab.node, "ip", "neigh", "replace", pod_ips[0], "lladdr", old_mac, "dev",
               host_ifname("c1", "eth0"), "nud", "permanent")
        with pytest.raises(CniError, match=f"the node pins {pod_ips[0]} to MAC {old_mac}"):
            runtime.check(checked, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node,
                          capability_args=CAPS)
        assert not lab.ping(lab.node, pod_ips[0])  # which is why it matters
        lab.sh(lab.node, "ip", "neigh", "del", pod_ips[0], "dev", host_ifname("c1", "eth0"))
        runtime.check(checked, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node,
                      capability_args=CAPS)

        assert _leftovers(lab, "c1", pod_ips) != []  # the probe sees what the chain made
        runtime.delete(conflist, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node,
                       prev_result=r, capability_args=CAPS)
        assert _leftovers(lab, "c1", pod_ips) == []
        assert "eth0" not in lab.sh(p, "ip", "-o", "link").stdout
        assert [h for h in lab.allocations() if "/c1/" in h] == []  # cq's remain
        for fam in (4, 6):  # the other pod is untouched
            assert lab.ping(lab.node, _addr(rq, fam))
        runtime.delete(make_netconf(lab.url, "n1", True), "cq", lab.path(q), "eth0", CNI_PATH,
                       node_netns=lab.node, prev_result=rq)
        assert lab.allocations() == set()
    finally:
        server.kill()
        server.wait()
