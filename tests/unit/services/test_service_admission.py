"""Service admission on a real SQLite store: Kubernetes' family rules, requested values
honoured or refused naming the field, release, and no duplicate under concurrency."""
from __future__ import annotations

import ipaddress
import multiprocessing as mp
import os
import shutil

import pytest

from needs import missing

from podnet.api.objects import from_dict
from podnet.datastore.interface import open_datastore
from podnet.datastore.sqlite import SqliteDatastore
from podnet.ipam.serviceips import (ServiceAdmissionError, ServiceCIDRs, admit_service,
                                    cluster_service_cidrs, held_by, release_service)
from builders import make_service

ETCD_BIN = os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")
DUAL = ServiceCIDRs({"IPv4": "10.96.0.0/12", "IPv6": "fd00:10:96::/112"})


@pytest.fixture
def store(tmp_path):
    s = SqliteDatastore(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()


def svc(name="web", mutate=None, ns="default"):
    return make_service(ns, name, mutate, ip="")


def stored(store, s):
    out = admit_service(store, s)
    return store.create(out)


def pool(name, cidr):
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                      "spec": {"cidr": cidr}})


def test_single_stack_default_is_ipv4_from_the_upper_band(store):
    s = admit_service(store, svc())
    ip = ipaddress.ip_address(s.spec["clusterIP"])
    assert ip in ipaddress.ip_network("10.96.0.0/12") and int(ip) - int(ipaddress.ip_address("10.96.0.0")) > 256
    assert s.spec["clusterIPs"] == [str(ip)] and s.spec["ipFamilies"] == ["IPv4"]
    assert s.spec["ipFamilyPolicy"] == "SingleStack"


def test_families_follow_the_pools(store):
    assert cluster_service_cidrs(store).families == ["IPv4"]
    store.create(pool("v4", "10.244.0.0/16"))
    assert cluster_service_cidrs(store).families == ["IPv4"]
    store.create(pool("v6", "fd00:10:244::/56"))
    assert cluster_service_cidrs(store).families == ["IPv4", "IPv6"]
    s = admit_service(store, svc(mutate=lambda d: d["spec"].update(ipFamilyPolicy="PreferDualStack")))
    assert s.spec["ipFamilies"] == ["IPv4", "IPv6"] and ":" in s.spec["clusterIPs"][1]


def test_v6_only_cluster_defaults_to_ipv6(tmp_path):
    st = SqliteDatastore(f"sqlite:///{tmp_path}/v6.db")
    st.create(pool("v6", "fd00:10:244::/56"))
    s = admit_service(st, svc())
    assert s.spec["ipFamilies"] == ["IPv6"] and s.spec["clusterIP"].startswith("fd00:10:96::")
    st.close()


def test_require_dual_stack_needs_a_dual_cluster(store):
    with pytest.raises(ServiceAdmissionError, match="spec.ipFamilyPolicy: RequireDualStack needs"):
        admit_service(store, svc(mutate=lambda d: d["spec"].update(ipFamilyPolicy="RequireDualStack")))
    s = admit_service(store, svc(mutate=lambda d: d["spec"].update(ipFamilyPolicy="PreferDualStack")))
    assert s.spec["ipFamilies"] == ["IPv4"]


def test_requested_ip_honoured_then_refused_naming_owner(store):
    stored(store, make_service("kube-system", "kube-dns", ip="10.96.0.10"))
    with pytest.raises(ServiceAdmissionError) as e:
        admit_service(store, make_service("default", "other", ip="10.96.0.10"))
    assert str(e.value) == "spec.clusterIPs[0]: 10.96.0.10 is already allocated to kube-system/kube-dns"
    with pytest.raises(ServiceAdmissionError, match=r"spec.clusterIPs\[0\]: 10.200.0.1 is not in the service CIDR"):
        admit_service(store, make_service("default", "out", ip="10.200.0.1"))
    with pytest.raises(ServiceAdmissionError, match="is IPv6 but spec.ipFamilies"):
        admit_service(store, make_service("default", "mix", lambda d: d["spec"].update(ipFamilies=["IPv4"]),
                                          ip="fd00:10:96::5"), DUAL)


def test_update_keeps_allocation_and_release_frees(store):
    live = stored(store, svc())
    again = admit_service(store, live)
    assert again.spec["clusterIPs"] == live.spec["clusterIPs"]
    store.delete("Service", "default", "web")
    release_service(store, live)
    assert held_by(store, live) == []
    re = admit_service(store, make_service("default", "x", ip=live.spec["clusterIP"]))
    assert re.spec["clusterIP"] == live.spec["clusterIP"]


def test_headless_and_externalname_get_no_ip(store):
    h = admit_service(store, make_service("default", "h", ip="None"))
    assert h.spec["clusterIPs"] == ["None"] and h.spec["ipFamilies"] == ["IPv4"]
    e = admit_service(store, make_service("default", "e", lambda d: d["spec"].update(type="ExternalName",
                                                                                     externalName="a.example")))
    assert "clusterIP" not in e.spec and "ipFamilies" not in e.spec
    assert store.list("ServiceIPAllocation").items == []


def _np(port=None, proto="TCP"):
    def m(d):
        d["spec"]["type"] = "NodePort"
        d["spec"]["ports"][0]["protocol"] = proto
        if port:
            d["spec"]["ports"][0]["nodePort"] = port
    return m


def test_node_ports(store):
    a = stored(store, svc("a", _np()))
    assert 30000 <= a.spec["ports"][0]["nodePort"] <= 32767
    stored(store, svc("b", _np(30080)))
    with pytest.raises(ServiceAdmissionError, match=r"spec.ports\[0\].nodePort: 30080/TCP is already allocated to default/b"):
        admit_service(store, svc("c", _np(30080)))
    assert admit_service(store, svc("u", _np(30080, "UDP"))).spec["ports"][0]["nodePort"] == 30080
    with pytest.raises(ServiceAdmissionError, match="not in the node port range 30000-32767"):
        admit_service(store, svc("d", _np(80)))
    with pytest.raises(ServiceAdmissionError, match="may not be used when type is 'ClusterIP'"):
        admit_service(store, svc("e", lambda d: d["spec"]["ports"][0].update(nodePort=30001)))


def test_load_balancer_node_ports_unless_allocate_load_balancer_node_ports_is_false(store):
    def lb(allocate=None, port=None):
        def m(d):
            _np(port)(d)
            d["spec"]["type"] = "LoadBalancer"
            if allocate is not None:
                d["spec"]["allocateLoadBalancerNodePorts"] = allocate
        return m
    assert 30000 <= stored(store, svc("a", lb())).spec["ports"][0]["nodePort"] <= 32767
    assert "nodePort" not in stored(store, svc("b", lb(False))).spec["ports"][0]
    assert stored(store, svc("c", lb(False, 30099))).spec["ports"][0]["nodePort"] == 30099  # asked for


def test_health_check_node_port_for_a_local_load_balancer_only(store):
    def lb(policy, hc=None):
        def m(d):
            d["spec"].update(type="LoadBalancer", externalTrafficPolicy=policy)
            if hc:
                d["spec"]["healthCheckNodePort"] = hc
        return m
    a = stored(store, svc("a", lb("Local")))
    hc = a.spec["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != a.spec["ports"][0]["nodePort"]
    assert "healthCheckNodePort" not in stored(store, svc("b", lb("Cluster"))).spec
    # shared with nodePorts: another Service may not take it as either
    with pytest.raises(ServiceAdmissionError, match=rf"spec.healthCheckNodePort: {hc}/TCP is already allocated to default/a"):
        admit_service(store, svc("c", lb("Local", hc)))
    with pytest.raises(ServiceAdmissionError, match="may only be set when type is LoadBalancer and externalTrafficPolicy is Local"):
        admit_service(store, svc("d", lb("Cluster", 31999)))
    # a switch to Cluster gives it back
    d = a.to_dict()
    d["spec"]["externalTrafficPolicy"] = "Cluster"
    updated = admit_service(store, from_dict(d))
    assert "healthCheckNodePort" not in updated.spec
    assert not [o for o in store.list("NodePortAllocation").items if o.name == f"tcp-{hc}"]


def test_update_to_clusterip_gives_node_port_back(store):
    live = stored(store, svc("b", _np(30080)))
    d = live.to_dict()
    d["spec"]["type"] = "ClusterIP"
    d["spec"]["ports"][0].pop("nodePort")
    admit_service(store, from_dict(d))
    assert [o.name for o in store.list("NodePortAllocation").items] == []


def test_lost_create_race_keeps_the_winners_allocations(store):
    winner = stored(store, svc("w"))
    loser = admit_service(store, svc("w"))  # same name, admitted before it saw the winner
    release_service(store, loser)
    assert {o.name for o in held_by(store, winner)} == set(winner.spec["clusterIPs"])


def _admit_many(args):
    url, worker, n = args
    st = open_datastore(url)
    out = []
    for i in range(n):
        s = admit_service(st, make_service("default", f"w{worker}-{i}",
                                           lambda d: (d["spec"].pop("clusterIP"), d["spec"].pop("clusterIPs"),
                                                      d["spec"].update(type="NodePort")),
                                           ), ServiceCIDRs({"IPv4": "10.96.0.0/26"}))
        out.append((s.spec["clusterIP"], s.spec["ports"][0]["nodePort"]))
    st.close()
    return out


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/race.db"
        SqliteDatastore(url).close()
        yield url
        return
    if not (os.path.exists(ETCD_BIN) or shutil.which("etcd")):
        missing(f"etcd binary not found at {ETCD_BIN}")
    from podnet.datastore.etcd_server import EtcdServer
    server = EtcdServer(data_dir=str(tmp_path / "etcd"), binary=ETCD_BIN)
    server.start()
    try:
        yield f"etcd://{server.client_host}:{server.client_port}/svc-race"
    finally:
        server.stop()


def test_concurrent_appliers_never_share_an_ip_or_port(store_url):
    url = store_url
    # a /26 holds 62 service IPs: 4 x 15 fills almost all of it, so collisions are certain
    with mp.get_context("fork").Pool(4) as p:
        res = [x for chunk in p.map(_admit_many, [(url, w, 15) for w in range(4)]) for x in chunk]
    ips, ports = [r[0] for r in res], [r[1] for r in res]
    assert len(set(ips)) == len(ips) == 60 and len(set(ports)) == len(ports)


def test_update_to_externalname_gives_everything_back(store):
    live = stored(store, svc("x", _np(30090)))
    d = live.to_dict()
    d["spec"].update(type="ExternalName", externalName="db.example")
    out = admit_service(store, from_dict(d))
    assert "clusterIP" not in out.spec and "nodePort" not in out.spec["ports"][0]
    assert held_by(store, live) == []
