"""calc.endpointslices (pure) and the controller that writes them (real SQLite store)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from podnet.apiserver.bootstrap import ensure_default_namespaces
from podnet.apiserver.write import Writer
from podnet.controllers.endpointslice import EndpointSliceController
from podnet.api.objects import EndpointSlice
from podnet.calc.endpointslices import desired_slices
from podnet.datastore.sqlite import SqliteDatastore
from builders import make_pod, make_service, make_slice, endpoint


def web(mutate=None, **kw):
    return make_service("default", "web", mutate, ports=[{"name": "http", "port": 80, "targetPort": "http"}], **kw)


def eps(sl):
    return [(e["addresses"][0], e["conditions"]["ready"], e["conditions"]["serving"],
             e["conditions"]["terminating"]) for e in sl["endpoints"]]


def test_named_target_port_resolved_per_pod_groups_slices():
    pods = [make_pod("default", "a", ["10.244.1.2"], {"app": "web"}),
            make_pod("default", "b", ["10.244.1.3"], {"app": "web"},
                     ports=[{"name": "http", "containerPort": 9090}]),
            make_pod("default", "c", ["10.244.1.4"], {"app": "other"}),
            make_pod("other", "d", ["10.244.1.5"], {"app": "web"})]
    slices = desired_slices(web(), pods)
    by_port = {s["ports"][0]["port"]: [e["addresses"][0] for e in s["endpoints"]] for s in slices}
    assert by_port == {8080: ["10.244.1.2"], 9090: ["10.244.1.3"]}
    assert all(s["metadata"]["labels"]["kubernetes.io/service-name"] == "web" for s in slices)
    assert desired_slices(web(), pods) == slices  # stable names and order


def test_conditions_ready_serving_terminating():
    pods = [make_pod("default", "up", ["10.244.1.2"], {"app": "web"}),
            make_pod("default", "unready", ["10.244.1.3"], {"app": "web"}, ready=False),
            make_pod("default", "going", ["10.244.1.4"], {"app": "web"},
                     lambda d: d["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z")),
            make_pod("default", "done", ["10.244.1.5"], {"app": "web"},
                     lambda d: d["status"].update(phase="Succeeded"))]
    (s,) = desired_slices(web(), pods)
    assert eps(s) == [("10.244.1.2", True, True, False), ("10.244.1.3", False, False, False),
                      ("10.244.1.4", False, True, True)]
    (s,) = desired_slices(web(lambda d: d["spec"].update(publishNotReadyAddresses=True)), pods)
    assert [e[1] for e in eps(s)] == [True, True, True]


def test_families_no_pods_no_selector_and_chunks():
    dual = web(lambda d: d["spec"].update(ipFamilies=["IPv4", "IPv6"]))
    pods = [make_pod("default", "a", ["10.244.1.2", "fd00:10:244:1::2"], {"app": "web"})]
    assert [s["addressType"] for s in desired_slices(dual, pods)] == ["IPv4", "IPv6"]
    (empty,) = desired_slices(web(), [])
    assert empty["endpoints"] == [] and empty["metadata"]["name"] == "web-ipv4"
    assert desired_slices(web(lambda d: d["spec"].pop("selector")), pods) == []
    many = [make_pod("default", f"p{i}", [f"10.244.2.{i}"], {"app": "web"}) for i in range(1, 251)]
    sizes = [len(s["endpoints"]) for s in desired_slices(web(), many)]
    assert sizes == [100, 100, 50]


@pytest.fixture
def store(tmp_path):
    s = SqliteDatastore(f"sqlite:///{tmp_path}/store.db")
    ensure_default_namespaces(Writer(s))  # the controller writes through the write path
    yield s
    s.close()


def slices_of(store, name="web"):
    return sorted((s for s in store.list("EndpointSlice", "default").items
                   if s.labels.get("kubernetes.io/service-name") == name), key=lambda s: s.name)


def test_controller_converges_and_leaves_user_slices_alone(store):
    store.create(web())
    store.create(make_pod("default", "a", ["10.244.1.2"], {"app": "web"}))
    user_svc = make_service("default", "ext", lambda d: d["spec"].pop("selector"))
    store.create(user_svc)
    store.create(make_slice("default", "ext", [endpoint("192.0.2.1")], name="ext-manual"))
    ctl = EndpointSliceController(store)
    ctl.reconcile_all()
    (s,) = slices_of(store)
    assert isinstance(s, EndpointSlice) and [e.addresses for e in s.endpoints] == [("10.244.1.2",)]
    writes = ctl.writes
    ctl.reconcile_all()
    assert ctl.writes == writes  # nothing differs: nothing written
    assert [s.name for s in slices_of(store, "ext")] == ["ext-manual"]
    store.delete("Service", "default", "web")
    ctl.reconcile_all()
    assert slices_of(store) == []


def test_controller_loop_follows_pod_readiness(store):
    store.create(web())
    pod = store.create(make_pod("default", "a", ["10.244.1.2"], {"app": "web"}))
    with running_controller(store):
        def ready_of():
            sl = slices_of(store)
            return [e.ready for s in sl for e in s.endpoints]
        _wait(lambda: ready_of() == [True])
        d = pod.to_dict()
        d["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        store.update(pod.with_status(d["status"]))
        _wait(lambda: ready_of() == [False])
        store.delete("Pod", "default", "a")
        _wait(lambda: ready_of() == [])


@contextmanager
def running_controller(store):
    """The controller's own loop on a thread, stopped (and checked gone) on exit."""
    stop = threading.Event()
    t = threading.Thread(target=EndpointSliceController(store).run, args=(stop,), daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)
    assert not t.is_alive()


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    assert cond()


def test_controller_loop_follows_relabelling_and_new_services(store):
    store.create(web())
    pod = store.create(make_pod("default", "a", ["10.244.1.2"], {"app": "web"}))
    with running_controller(store):
        def addrs(name="web"):
            return [e.addresses[0] for s in slices_of(store, name) for e in s.endpoints]
        _wait(lambda: addrs() == ["10.244.1.2"])
        # the pod leaves the Service by its labels (old labels matter: it was selected)
        store.update(pod.with_metadata(labels={"app": "other"}))
        _wait(lambda: addrs() == [])
        store.create(make_service("default", "other", ports=[{"name": "http", "port": 80, "targetPort": 8080}],
                                  selector={"app": "other"}))
        _wait(lambda: addrs("other") == ["10.244.1.2"])


def test_controller_writes_zones_and_hints_and_follows_a_node_changing_zone(store):
    from builders import make_node
    from podnet.calc.topology import ZONE_LABEL
    n1 = make_node("n1", ["198.18.0.11"]).with_metadata(labels={ZONE_LABEL: "a"})
    store.create(n1)
    n2 = store.create(make_node("n2", ["198.18.0.12"]))
    store.create(web(lambda d: d["spec"].update(trafficDistribution="PreferSameZone")))
    store.create(make_pod("default", "a", ["10.244.1.2"], {"app": "web"}, node="n1"))
    store.create(make_pod("default", "b", ["10.244.2.2"], {"app": "web"}, node="n2"))

    def hints():
        return [(e["nodeName"], e.get("zone"), e.get("hints")) for s in slices_of(store)
                for e in s.raw["endpoints"]]
    with running_controller(store):
        _wait(lambda: hints() == [("n1", "a", {"forZones": [{"name": "a"}]}), ("n2", None, None)])
        # a node's zone label changes: every Service's endpoints on it are rewritten
        store.update(n2.with_metadata(labels={ZONE_LABEL: "b"}))
        _wait(lambda: hints() == [("n1", "a", {"forZones": [{"name": "a"}]}),
                                  ("n2", "b", {"forZones": [{"name": "b"}]})])


def test_controller_balances_auto_hints_by_node_cpu_and_follows_readiness(store):
    """topology-mode Auto: hints follow each zone's allocatable CPU; a node turning unready
    leaves one zone, so the hints go (calc/topology_auto.py)."""
    from builders import make_node
    from podnet.calc.topology import ZONE_LABEL

    def node(name, ip, zone, cpu):
        n = make_node(name, [ip]).with_metadata(labels={ZONE_LABEL: zone})
        return n.with_status({**n.status, "allocatable": {"cpu": cpu},
                              "conditions": [{"type": "Ready", "status": "True"}]})
    store.create(node("n1", "198.18.0.11", "a", "3"))
    n2 = store.create(node("n2", "198.18.0.12", "b", "1"))
    store.create(web(lambda d: d["metadata"].update(
        annotations={"service.kubernetes.io/topology-mode": "Auto"})))
    for i, n in enumerate(["n1", "n2", "n2", "n2"], start=1):
        store.create(make_pod("default", f"p{i}", [f"10.244.{i}.2"], {"app": "web"}, node=n))

    def hinted():
        return [(e["nodeName"], (e.get("hints") or {}).get("forZones")) for s in slices_of(store)
                for e in s.raw["endpoints"]]
    with running_controller(store):
        # a has 3/4 of the CPU and 1 of 4 endpoints: b gives it its first two
        _wait(lambda: hinted() == [("n1", [{"name": "a"}]), ("n2", [{"name": "a"}]),
                                   ("n2", [{"name": "a"}]), ("n2", [{"name": "b"}])])
        store.update(n2.with_status({**n2.status, "conditions": [{"type": "Ready", "status": "False"}]}))
        _wait(lambda: hinted() == [("n1", None), ("n2", None), ("n2", None), ("n2", None)])
