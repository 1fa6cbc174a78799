"""Spec points found missing by an audit against the CNI 1.1.0 checklist, driven as a
runtime drives the plugins (raw protocol and podnet.cni.runtime), on the real kernel,
with and without the node daemon. The pure parts are in tests/unit/cni/test_cni_chain_result.py."""
from __future__ import annotations

import os

import pytest

from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.cni.errors import CniError
from podnet.dataplane.net.podwire import host_ifname

from cnilab import CNI_PATH

pytestmark = pytest.mark.root

ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}
PREV = {"cniVersion": "1.1.0",
        "interfaces": [{"name": "tap0", "mac": "02:00:00:00:00:01"}],
        "ips": [{"address": "192.0.2.5/24", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}], "dns": {"nameservers": ["192.0.2.53"]},
        "x-extra": "kept"}


def test_add_passes_prev_result_on_with_its_own_added(dual_lab):
    """SPEC.md §2 ADD: a plugin given prevResult MUST pass it on (modified as needed)."""
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    p = lab.netns("p")
    rc, doc, err = lab.raw("podnet-cni", {**ADD_ENV, "CNI_NETNS": lab.path(p)}, {**nc, "prevResult": PREV})
    assert rc == 0, (doc, err)
    assert [i["name"] for i in doc["interfaces"]] == ["tap0", host_ifname("c1", "eth0"), "eth0"]
    assert doc["interfaces"][2]["sandbox"] == lab.path(p)
    assert doc["ips"][0] == {"address": "192.0.2.5/24", "interface": 0}
    assert doc["ips"][1]["address"].endswith("/32") and doc["ips"][1]["interface"] == 2
    assert doc["routes"] == [{"dst": "192.0.2.0/24"}, {"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert doc["dns"] == {"nameservers": ["192.0.2.53"]} and doc["x-extra"] == "kept"
    assert doc["cniVersion"] == "1.1.0"
    # our own dns, when the config has one, replaces the earlier plugin's
    q = lab.netns("q")
    rc, doc, err = lab.raw("podnet-cni", {**ADD_ENV, "CNI_CONTAINERID": "c2", "CNI_NETNS": lab.path(q)},
                           {**nc, "dns": {"nameservers": ["10.96.0.10"]}, "prevResult": PREV})
    assert rc == 0 and doc["dns"] == {"nameservers": ["10.96.0.10"]}, (doc, err)


def test_a_bad_prev_result_is_named_and_leaves_nothing(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    p = lab.netns("p")
    rc, doc, _ = lab.raw("podnet-cni", {**ADD_ENV, "CNI_NETNS": lab.path(p)},
                         {**nc, "prevResult": {**PREV, "interfaces": "tap0"}})
    assert rc != 0 and doc["code"] == 7 and "prevResult.interfaces" in doc["msg"]
    assert lab.allocations() == set()
    assert "eth0" not in lab.sh(p, "ip", "-o", "link").stdout


def test_a_real_chain_after_the_reference_loopback(lab, tmp_path):
    """conflist [loopback, podnet-cni] (host-local IPAM, cniVersion 1.0.0 for Debian's
    binaries): the final result holds both plugins' parts, and CHECK of it passes (each
    plugin checks its own interface's addresses, not the earlier plugin's)."""
    conflist = {"cniVersion": "1.0.0", "name": "chain", "plugins": [
        {"type": "loopback"},
        {"type": "podnet-cni", "ipam": {"type": "host-local", "dataDir": str(tmp_path / "hl"),
                                        "ranges": [[{"subnet": "10.71.0.0/24"}]]}}]}
    p = lab.netns("p")
    r = runtime.add(conflist, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    names = [i["name"] for i in r["interfaces"]]
    assert names == ["lo", host_ifname("c1", "eth0"), "eth0"], r
    by_if = {names[i["interface"]]: i["address"] for i in r["ips"] if not i["address"].startswith("::")}
    assert by_if["lo"] == "127.0.0.1/8" and by_if["eth0"].startswith("10.71.0.")
    runtime.check(conflist, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node)
    runtime.delete(conflist, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    assert "eth0" not in lab.sh(p, "ip", "-o", "link").stdout


def test_dns_from_the_ipam_plugin_is_kept(lab, tmp_path):
    """host-local turns `resolvConf` into the result's dns; the main plugin must not drop
    it when its own config has no dns (bridge keeps it too)."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.96.0.10\nsearch default.svc.cluster.local\n")
    nc = {"cniVersion": "1.0.0", "name": "hldns", "type": "podnet-cni",
          "ipam": {"type": "host-local", "dataDir": str(tmp_path / "hl"), "resolvConf": str(resolv),
                   "ranges": [[{"subnet": "10.72.0.0/24"}]]}}
    p = lab.netns("p")
    r = runtime.add(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    assert r["dns"]["nameservers"] == ["10.96.0.10"] and r["dns"]["search"] == ["default.svc.cluster.local"]
    runtime.delete(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)

def _fake_ipam(lab, body):
    """A fake IPAM plugin in the node's plugin dir (on the daemon's own search path too)."""
    p = os.path.join(lab.plugin_dir, "fake-ipam")
    with open(p, "w") as f:
        f.write("#!/bin/sh\ncat > /dev/null\n" + body)
    os.chmod(p, 0o755)
    return lab.plugin_dir


FAKE_ADD = ("echo \"fake-ipam $CNI_COMMAND: a word for the runtime\" >&2\n"
            "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
            "  echo '{\"cniVersion\": \"1.1.0\", \"ips\": [{\"address\": \"10.73.0.7/24\"}]}'\nfi\n")


def test_a_delegated_ipam_plugins_stderr_reaches_the_runtime(lab, tmp_path):
    """SPEC.md §4 / libcni delegate: the IPAM plugin's stderr is passed through, also when
    the node daemon serves the call."""
    from cnilab import CNI_PATH as base
    d = _fake_ipam(lab, FAKE_ADD)
    nc = {"cniVersion": "1.1.0", "name": "fk", "type": "podnet-cni", "ipam": {"type": "fake-ipam"}}
    p = lab.netns("p")
    env = {**ADD_ENV, "CNI_NETNS": lab.path(p), "CNI_PATH": f"{d}:{base}"}
    rc, doc, err = lab.raw("podnet-cni", env, nc)
    assert rc == 0 and doc["ips"][0]["address"] == "10.73.0.7/32", (doc, err)
    assert "fake-ipam ADD: a word for the runtime" in err
    rc, doc, err = lab.raw("podnet-cni", {**env, "CNI_COMMAND": "DEL"}, nc)
    assert rc == 0 and doc is None and "fake-ipam DEL: a word for the runtime" in err


def test_a_delegated_ipam_plugin_gets_the_same_environment(lab, tmp_path):
    """SPEC.md §4: the IPAM plugin runs with the plugin's environment, all of it, also
    when the node daemon serves the call (the launcher sends the whole environment)."""
    from cnilab import CNI_PATH as base
    seen = tmp_path / "env.txt"
    d = _fake_ipam(lab, f"env > {seen}\n")
    nc = {"cniVersion": "1.1.0", "name": "fk", "type": "podnet-cni", "ipam": {"type": "fake-ipam"}}
    rc, doc, err = lab.raw("podnet-cni", {"CNI_COMMAND": "STATUS", "CNI_PATH": f"{d}:{base}",
                                          "RUNTIME_TOKEN": "a=b c", "HOME": "/nonexistent"}, nc)
    assert rc == 0, (doc, err)
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env["RUNTIME_TOKEN"] == "a=b c" and env["HOME"] == "/nonexistent" and env["CNI_COMMAND"] == "STATUS"


def test_a_chain_with_podnet_ipam_checks_clean(dual_lab):
    """The same chain with podnet-ipam: its CHECK, too, is about our interface's addresses."""
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    conflist = {"cniVersion": "1.0.0", "name": nc["name"],
                "plugins": [{"type": "loopback"}, {k: v for k, v in nc.items() if k not in ("cniVersion", "name")}]}
    p = lab.netns("p")
    r = runtime.add(conflist, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    assert [i["name"] for i in r["interfaces"]][0] == "lo" and len(r["ips"]) == 4
    runtime.check(conflist, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node)
    # and it still finds a real difference on our interface
    lab.sh(p, "ip", "addr", "del", r["ips"][2]["address"], "dev", "eth0")
    with pytest.raises(CniError, match="is missing on eth0"):
        runtime.check(conflist, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node)
    runtime.delete(conflist, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    assert lab.allocations() == set()


def test_check_tolerates_a_later_plugin_that_took_the_default_route(dual_lab):
    """A later chained plugin (route-override, sbr) may replace our default route and drop
    it from the result: CHECK of that final result passes; while the result still lists
    the route, its absence is still found."""
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    p = lab.netns("p")
    r = runtime.add(nc, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    lab.sh(p, "ip", "route", "del", "default")
    lab.sh(p, "ip", "route", "add", "default", "dev", "eth0", "metric", "50")
    final = {**r, "routes": [{"dst": "0.0.0.0/0"}]}
    runtime.check(nc, "c1", lab.path(p), "eth0", CNI_PATH, final, node_netns=lab.node)
    with pytest.raises(CniError, match="default route via 169.254.1.1 is missing on eth0"):
        runtime.check(nc, "c1", lab.path(p), "eth0", CNI_PATH, r, node_netns=lab.node)


def test_podnet_ipam_under_another_plugin_checks_only_that_interfaces_addresses(dual_lab):
    """podnet-ipam called by another main plugin in a chain: CHECK's prevResult holds the
    earlier plugins' addresses too (loopback's 127.0.0.1); only CNI_IFNAME's are ours."""
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    conf = {**nc, "type": "bridge"}
    env = {**ADD_ENV, "CNI_NETNS": lab.path(lab.netns("p"))}
    rc, res, err = lab.raw("podnet-ipam", env, conf)
    assert rc == 0, (res, err)
    ours = res["ips"][0]["address"]
    prev = {"cniVersion": "1.1.0",
            "interfaces": [{"name": "lo", "sandbox": env["CNI_NETNS"]}, {"name": "br0"},
                           {"name": "eth0", "sandbox": env["CNI_NETNS"]}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}, {"address": ours, "interface": 2}]}
    rc, doc, err = lab.raw("podnet-ipam", {**env, "CNI_COMMAND": "CHECK"}, {**conf, "prevResult": prev})
    assert rc == 0 and doc is None, (doc, err)
    prev["ips"][1]["address"] = "10.244.99.99/32"  # not held: still found
    rc, doc, _ = lab.raw("podnet-ipam", {**env, "CNI_COMMAND": "CHECK"}, {**conf, "prevResult": prev})
    assert rc == 1 and doc["code"] == 100 and "10.244.99.99" in doc["msg"]


def test_a_second_interface_leaves_the_pods_default_route_alone(dual_lab):
    """A pod already wired by one network (eth0) gets a second podnet interface (net1, as
    Multus would add it): the pod keeps eth0's default routes, net1 adds none and its
    result lists none; deleting net1 leaves eth0 working."""
    lab = dual_lab
    first = make_netconf(lab.url, "n1", True)
    second = make_netconf(lab.url, "n1", True, name="second")
    p, q = lab.netns("p"), lab.netns("q")
    r1 = runtime.add(first, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    rq = runtime.add(first, "cq", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node)
    r2 = runtime.add(second, "c1", lab.path(p), "net1", CNI_PATH, node_netns=lab.node)
    assert r2["routes"] == [] and [i["address"].split("/")[1] for i in r2["ips"]] == ["32", "128"]
    for fam in ("-4", "-6"):
        routes = lab.sh(p, "ip", fam, "route", "show", "default").stdout
        assert "dev eth0" in routes and "net1" not in routes, routes
    addrs = lab.sh(p, "ip", "-o", "addr", "show", "dev", "net1").stdout
    assert all(i["address"] in addrs for i in r2["ips"])
    runtime.check(second, "c1", lab.path(p), "net1", CNI_PATH, r2, node_netns=lab.node)
    runtime.delete(second, "c1", lab.path(p), "net1", CNI_PATH, node_netns=lab.node, prev_result=r2)
    for i in r1["ips"]:
        assert lab.ping(q, i["address"].split("/")[0])
    runtime.delete(first, "c1", lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r1)
    runtime.delete(first, "cq", lab.path(q), "eth0", CNI_PATH, node_netns=lab.node, prev_result=rq)
    assert lab.allocations() == set()
