"""The load-balancer controller on a real SQLite store, through the real write path
(issue 16 §2): addresses from LoadBalancer pools, one per family, in
status.loadBalancer.ingress; another class left alone; given back when the Service stops
being a LoadBalancer or is deleted; a full pool hands out nothing."""
from __future__ import annotations

import threading

import pytest

from podnet.api.objects import IPPool, from_dict
from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.write import Writer
from podnet.calc.service_paths import pod_cidrs_of
from podnet.controllers.loadbalancer import LoadBalancerController
from podnet.datastore.sqlite import SqliteDatastore
from podnet.ipam.pools import usable_pools
from builders import make_pool, make_service


def lb_pool(name, cidr):
    obj = from_dict({"apiVersion": "podnet.io/v1", "kind": "IPPool", "metadata": {"name": name},
                     "spec": {"cidr": cidr, "allowedUses": ["LoadBalancer"]}})
    assert isinstance(obj, IPPool)
    return obj


@pytest.fixture
def env(tmp_path):
    s = SqliteDatastore(f"sqlite:///{tmp_path}/store.db")
    w = Writer(s)
    ensure_default_namespaces(w)
    for p in (make_pool("v4", "10.244.0.0/16"), make_pool("v6", "fd00:10:244::/56"),
              lb_pool("lb4", "203.0.113.240/30"), lb_pool("lb6", "fd00:203:113::f0/126")):
        w.create(p)
    yield s, w, LoadBalancerController(s)
    s.close()


def lb(name, dual=False, **spec):
    def m(d):
        d["spec"].update(type="LoadBalancer", **spec)
        if dual:
            d["spec"].update(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    return make_service("default", name, m, ip="")


def ingress(store, name):
    s = store.get("Service", "default", name)
    return [i["ip"] for i in (s.status.get("loadBalancer") or {}).get("ingress") or []]


def test_addresses_per_family_from_load_balancer_pools_only(env):
    store, w, c = env
    w.create(lb("a", dual=True))
    w.create(lb("b"))
    w.create(make_service("default", "plain", ip=""))
    assert c.reconcile_all()
    a, b = ingress(store, "a"), ingress(store, "b")
    assert len(a) == 2 and a[0].startswith("203.0.113.24") and a[1].startswith("fd00:203:113::f")
    assert len(b) == 1 and b[0] in ("203.0.113.241", "203.0.113.242") and b[0] != a[0]
    assert ingress(store, "plain") == []
    # level-triggered: a second pass writes nothing and keeps the addresses
    writes = c.writes
    assert c.reconcile_all() and c.writes == writes and ingress(store, "a") == a
    # the pool is full now (/30: two usable): a third IPv4 Service waits
    w.create(lb("c"))
    c.reconcile_all()
    assert ingress(store, "c") == []
    # b stops being a LoadBalancer: its address goes back, c gets it
    cur = store.get("Service", "default", "b")
    d = cur.to_dict()
    d["spec"]["type"] = "ClusterIP"
    d["spec"]["ports"][0].pop("nodePort", None)
    w.update(from_dict(d), revision=cur.resource_version)
    c.reconcile_all()
    c.reconcile_all()
    assert ingress(store, "b") == [] and ingress(store, "c") == b
    # a deleted Service frees its addresses (the write path's release)
    w.delete("Service", "default", "a")
    w.create(lb("d"))
    c.reconcile_all()
    assert ingress(store, "d") == [a[0]]


def test_another_class_is_left_alone(env):
    store, w, c = env
    w.create(lb("other", loadBalancerClass="example.com/lb"))
    w.create(lb("ours", loadBalancerClass="podnet.io/lb"))
    c.reconcile_all()
    assert ingress(store, "other") == [] and len(ingress(store, "ours")) == 1
    # another controller's status stays as it wrote it
    cur = store.get("Service", "default", "other")
    w.update_status(cur.with_status({"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}))
    c.reconcile_all()
    assert ingress(store, "other") == ["192.0.2.7"]


def test_load_balancer_pools_are_not_pod_cidrs(env):
    store, _, _ = env
    pools = store.list("IPPool").items
    assert pod_cidrs_of(pools) == ("10.244.0.0/16", "fd00:10:244::/56")
    assert [p.name for p in usable_pools(pools, 4, {})] == ["v4"]


def test_the_loop_reacts_to_a_new_service(env):
    store, w, c = env
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop,), daemon=True)
    t.start()
    try:
        w.create(lb("live"))
        for _ in range(100):
            if ingress(store, "live"):
                break
            stop.wait(0.05)
        assert len(ingress(store, "live")) == 1
    finally:
        stop.set()
        t.join(5)
