"""podnet-cni + podnet-ipam driven exactly as a runtime drives them, on the real kernel."""
from __future__ import annotations

import json

import pytest

from needs import missing

from podnet.cni import runtime
from podnet.cni.config import make_netconf
from podnet.cni.errors import CniError
from podnet.dataplane.net.podwire import host_ifname

from cnilab import CNI_PATH, pool

pytestmark = pytest.mark.root


def _addr(result, family):
    return next(i["address"].split("/")[0] for i in result["ips"]
                if (":" in i["address"]) == (family == 6))


def test_two_pods_ping_dual_stack_and_del_cleans_up(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True, mtu=1400, cni_version="1.1.0")
    nc["dns"] = {"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local"]}
    p1, p2 = lab.netns("p1"), lab.netns("p2")
    r1 = runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    r2 = runtime.add(nc, "c2", lab.path(p2), "eth0", CNI_PATH, node_netns=lab.node)

    # The result, exactly as the spec shapes it.
    assert r1["cniVersion"] == "1.1.0" and r1["dns"] == nc["dns"]
    host, pod = r1["interfaces"]
    assert host == {"name": host_ifname("c1", "eth0"), "mac": "ee:ee:ee:ee:ee:ee"}
    assert pod["name"] == "eth0" and pod["sandbox"] == lab.path(p1)
    assert [i["address"].split("/")[1] for i in r1["ips"]] == ["32", "128"]
    assert all(i["interface"] == 1 for i in r1["ips"])
    assert {i["gateway"] for i in r1["ips"]} == {"169.254.1.1", "fe80::ecee:eeff:feee:eeee"}
    assert {r["dst"] for r in r1["routes"]} == {"0.0.0.0/0", "::/0"}

    # The kernel agrees.
    links = json.loads(lab.sh(p1, "ip", "-j", "link", "show", "eth0").stdout)
    assert links[0]["mtu"] == 1400 and links[0]["address"] == pod["mac"]
    addrs = lab.sh(p1, "ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"{_addr(r1, 4)}/32" in addrs and f"{_addr(r1, 6)}/128" in addrs
    assert "default via 169.254.1.1" in lab.sh(p1, "ip", "route").stdout
    assert "default via fe80::ecee:eeff:feee:eeee" in lab.sh(p1, "ip", "-6", "route").stdout
    hroutes = lab.sh(lab.node, "ip", "route").stdout + lab.sh(lab.node, "ip", "-6", "route").stdout
    assert f"{_addr(r1, 4)} dev {host['name']}" in hroutes and f"{_addr(r1, 6)} dev {host['name']}" in hroutes
    assert lab.sh(lab.node, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert lab.sh(lab.node, "cat", f"/proc/sys/net/ipv4/conf/{host['name']}/proxy_arp").stdout.strip() == "1"

    assert lab.ping(p1, _addr(r2, 4)) and lab.ping(p2, _addr(r1, 4))
    assert lab.ping(p1, _addr(r2, 6)) and lab.ping(p2, _addr(r1, 6))

    runtime.check(nc, "c1", lab.path(p1), "eth0", CNI_PATH, r1, node_netns=lab.node)
    runtime.status(nc, CNI_PATH, node_netns=lab.node)

    for cid, p, r in (("c1", p1, r1), ("c2", p2, r2)):
        runtime.delete(nc, cid, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    assert "pn" not in lab.sh(lab.node, "ip", "-o", "link").stdout.replace("pnt-cni", "")
    assert "eth0" not in lab.sh(p1, "ip", "-o", "link").stdout
    assert lab.sh(lab.node, "ip", "route").stdout.strip() == ""
    assert "fd00" not in lab.sh(lab.node, "ip", "-6", "route").stdout
    assert lab.allocations() == set()


def test_del_is_idempotent(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    p1 = lab.netns("p1")
    r = runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    runtime.delete(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node, prev_result=r)
    runtime.delete(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)  # again
    runtime.delete(nc, "never-added", "", "eth0", CNI_PATH, node_netns=lab.node)  # no netns
    runtime.delete(nc, "c9", f"/var/run/netns/{lab.node}-gone", "eth0", CNI_PATH, node_netns=lab.node)
    assert lab.allocations() == set()


def test_check_names_what_is_missing(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    p1 = lab.netns("p1")
    r = runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    lab.sh(p1, "ip", "-6", "route", "del", "default")
    with pytest.raises(CniError, match="default route via fe80::ecee:eeff:feee:eeee is missing on eth0"):
        runtime.check(nc, "c1", lab.path(p1), "eth0", CNI_PATH, r, node_netns=lab.node)
    lab.sh(p1, "ip", "addr", "del", r["ips"][0]["address"], "dev", "eth0")
    with pytest.raises(CniError, match=f"address {r['ips'][0]['address']} is missing on eth0"):
        runtime.check(nc, "c1", lab.path(p1), "eth0", CNI_PATH, r, node_netns=lab.node)
    lab.sh(lab.node, "ip", "link", "del", host_ifname("c1", "eth0"))
    with pytest.raises(CniError, match="interface eth0 is missing"):
        runtime.check(nc, "c1", lab.path(p1), "eth0", CNI_PATH, r, node_netns=lab.node)


def test_failed_add_leaves_nothing_behind(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    p1 = lab.netns("p1")
    lab.sh(p1, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0")  # the name is taken in the pod
    with pytest.raises(CniError) as e:
        runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    assert e.value.code == 5 and "already exists" in e.value.msg
    assert host_ifname("c1", "eth0") not in lab.sh(lab.node, "ip", "-o", "link").stdout
    assert lab.allocations() == set()


def test_add_twice_is_refused_and_keeps_the_first(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    p1 = lab.netns("p1")
    r = runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    with pytest.raises(CniError) as e:
        runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    assert e.value.code == 101 and "already holds" in e.value.msg
    assert lab.allocations() == {"n1/podnet/c1/eth0"}
    runtime.check(nc, "c1", lab.path(p1), "eth0", CNI_PATH, r, node_netns=lab.node)


def test_gc_releases_what_is_not_valid(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    pods = {c: lab.netns(c) for c in ("a", "b", "c")}
    for c, p in pods.items():
        runtime.add(nc, c, lab.path(p), "eth0", CNI_PATH, node_netns=lab.node)
    runtime.gc(nc, [{"containerID": "b", "ifname": "eth0"}], CNI_PATH, node_netns=lab.node)
    assert lab.allocations() == {"n1/podnet/b/eth0"}
    links = lab.sh(lab.node, "ip", "-o", "link").stdout
    assert host_ifname("b", "eth0") in links and host_ifname("a", "eth0") not in links


ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0"}


@pytest.mark.parametrize("case", ["no-netns", "bad-json", "old-version", "unknown-field",
                                  "bad-mtu", "netns-gone", "bad-pool-cidr", "no-datastore"])
def test_error_codes_from_real_bad_input(dual_lab, case):
    lab = dual_lab
    p1 = lab.netns("p1")
    nc = make_netconf(lab.url, "n1", False)
    env = {**ADD_ENV, "CNI_NETNS": lab.path(p1)}
    code, stdin = {
        "no-netns": (4, nc),
        "bad-json": (6, b'{"cniVersion": "1.1.0", "name": '),
        "old-version": (1, {**nc, "cniVersion": "0.3.1"}),
        "unknown-field": (2, {**nc, "bridge": "cni0"}),
        "bad-mtu": (7, {**nc, "mtu": 12}),
        "netns-gone": (3, nc),
        "bad-pool-cidr": (7, {**nc, "ipam": {**nc["ipam"], "ipv4_pools": ["10.1.0.0/33"]}}),
        "no-datastore": (11, {**nc, "ipam": {**nc["ipam"], "datastore": "sqlite:///proc/pn-cni/x.db"}}),
    }[case]
    if case == "no-netns":
        env.pop("CNI_NETNS")
    if case == "netns-gone":
        env["CNI_NETNS"] = f"/var/run/netns/{lab.node}-does-not-exist"
    if case == "no-datastore" and lab.daemon is not None:
        code = 7  # the daemon serves its own datastore only: it does not even try this one
    rc, doc, err = lab.raw("podnet-cni", env, stdin)
    assert rc != 0 and doc["code"] == code, (doc, err)
    assert doc["msg"] and doc["cniVersion"]
    assert lab.allocations() == set()
    assert "eth0" not in lab.sh(p1, "ip", "-o", "link").stdout


def test_exhausted_pool_and_status(lab):
    lab.store.create(pool("tiny", "10.50.0.0/30", blockSize=30))  # 2 usable addresses
    nc = make_netconf(lab.url, "n1", False)
    for c in ("a", "b"):
        runtime.add(nc, c, lab.path(lab.netns(c)), "eth0", CNI_PATH, node_netns=lab.node)
    p = lab.netns("c")
    rc, doc, _ = lab.raw("podnet-cni", {**ADD_ENV, "CNI_NETNS": lab.path(p)}, nc)
    assert rc != 0 and doc["code"] == 11 and "no free IPv4 address" in doc["msg"]
    rc, doc, _ = lab.raw("podnet-cni", {"CNI_COMMAND": "STATUS"}, nc)
    assert rc != 0 and doc["code"] == 50 and "full" in doc["msg"]
    lab.store.update(lab.store.get("IPPool", "", "tiny").with_spec({"cidr": "10.50.0.0/30", "blockSize": 30, "disabled": True}), 0)
    rc, doc, _ = lab.raw("podnet-cni", {"CNI_COMMAND": "STATUS"}, nc)
    assert rc != 0 and doc["code"] == 50


def test_version_and_unknown_container_check(dual_lab):
    lab = dual_lab
    rc, doc, _ = lab.raw("podnet-cni", {"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.0.0"}, ns=False)
    assert rc == 0 and doc["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    nc = make_netconf(lab.url, "n1", False)
    p = lab.netns("p")
    rc, doc, _ = lab.raw("podnet-cni", {**ADD_ENV, "CNI_COMMAND": "CHECK", "CNI_NETNS": lab.path(p)},
                         {**nc, "prevResult": {"cniVersion": "1.1.0", "ips": []}})
    assert rc != 0 and doc["code"] == 3


def test_old_config_version_gets_old_result(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True, cni_version="0.4.0")
    r = runtime.add(nc, "c1", lab.path(lab.netns("p")), "eth0", CNI_PATH, node_netns=lab.node)
    assert r["cniVersion"] == "0.4.0" and [i["version"] for i in r["ips"]] == ["4", "6"]


def test_refuses_an_unnamed_namespace(dual_lab):
    """The guard that keeps the plugin out of the machine's own namespace, tested in an
    anonymous namespace (unshare -n) so that a broken guard cannot hurt the machine."""
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", False)
    import os
    import subprocess
    from cnilab import BIN
    env = {"PATH": os.environ["PATH"], **ADD_ENV, "CNI_NETNS": lab.path(lab.netns("p"))}
    cp = subprocess.run(["unshare", "--net", os.path.join(BIN, "podnet-cni")], env=env,
                        input=json.dumps(nc).encode(), capture_output=True)
    doc = json.loads(cp.stdout)
    assert cp.returncode != 0 and doc["code"] == 4 and "unnamed network namespace" in doc["msg"]
    assert lab.allocations() == set()


def test_parallel_adds_and_dels_on_one_node(dual_lab):
    """A runtime starts many pods at once: every one gets its own addresses and link,
    and parallel DELs leave nothing (runs with and without the daemon)."""
    from concurrent.futures import ThreadPoolExecutor
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    pods = {f"c{i}": lab.netns(f"q{i}") for i in range(16)}
    with ThreadPoolExecutor(8) as ex:
        res = dict(zip(pods, ex.map(lambda c: runtime.add(nc, c, lab.path(pods[c]), "eth0", CNI_PATH,
                                                          node_netns=lab.node), pods)))
    addrs = [i["address"] for r in res.values() for i in r["ips"]]
    assert len(addrs) == 32 == len(set(addrs))
    links = lab.sh(lab.node, "ip", "-o", "link").stdout
    assert all(host_ifname(c, "eth0") in links for c in pods)
    assert lab.ping(pods["c0"], _addr(res["c15"], 4)) and lab.ping(pods["c15"], _addr(res["c0"], 6))
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda c: runtime.delete(nc, c, lab.path(pods[c]), "eth0", CNI_PATH,
                                             node_netns=lab.node), pods))
    assert lab.allocations() == set()
    assert "pn" not in lab.sh(lab.node, "ip", "-o", "link").stdout.replace("pnt-cni", "")


def test_ipv6_only(dual_lab):
    lab = dual_lab
    nc = make_netconf(lab.url, "n1", True)
    nc["ipam"]["assign_ipv4"] = "false"
    p1, p2 = lab.netns("p1"), lab.netns("p2")
    r1 = runtime.add(nc, "c1", lab.path(p1), "eth0", CNI_PATH, node_netns=lab.node)
    r2 = runtime.add(nc, "c2", lab.path(p2), "eth0", CNI_PATH, node_netns=lab.node)
    assert [i["address"].split("/")[1] for i in r1["ips"]] == ["128"]
    assert r1["routes"] == [{"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}]
    assert lab.ping(p1, _addr(r2, 6))
    assert "inet " not in lab.sh(p1, "ip", "-o", "addr", "show", "dev", "eth0").stdout


@pytest.mark.etcd
def test_pods_on_an_etcd_store(lab, tmp_path):
    """The same wiring with the addresses in etcd, several ADDs at once (the daemon's
    worker threads share one etcd client)."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor
    if shutil.which("etcd") is None:
        missing("etcd binary not installed")
    from podnet.datastore.etcd import EtcdDatastore
    from podnet.datastore.etcd_server import EtcdServer
    # The plugins run in the node's namespace, where 127.0.0.1 is not this etcd: reach it
    # through a unix socket (the filesystem is shared by all namespaces).
    sock = tmp_path / "etcd.sock:0"
    with EtcdServer(str(tmp_path / "etcd"), unix_socket=str(sock)):
        url = f"etcd+unix://{sock}/pn-cni"
        store = EtcdDatastore(url)
        try:
            store.create(pool("v4", "10.244.0.0/16"))
            store.create(pool("v6", "fd00:10:244::/56"))
            nc = make_netconf(url, "n1", True)
            if lab.daemon is not None:
                lab.start_daemon(url)  # a node's daemon serves the store its pods use
            pods = {f"e{i}": lab.netns(f"e{i}") for i in range(6)}
            with ThreadPoolExecutor(6) as ex:
                res = dict(zip(pods, ex.map(lambda c: runtime.add(nc, c, lab.path(pods[c]), "eth0", CNI_PATH,
                                                                  node_netns=lab.node), pods)))
            addrs = [i["address"] for r in res.values() for i in r["ips"]]
            assert len(set(addrs)) == 12
            assert lab.ping(pods["e0"], _addr(res["e5"], 4)) and lab.ping(pods["e5"], _addr(res["e0"], 6))
            with ThreadPoolExecutor(6) as ex:
                list(ex.map(lambda c: runtime.delete(nc, c, lab.path(pods[c]), "eth0", CNI_PATH,
                                                     node_netns=lab.node), pods))
            assert all(not (r.spec.get("allocations") or {}) for r in store.list("IPAMBlock").items)
        finally:
            store.close()
