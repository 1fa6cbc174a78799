"""The datastore contract, run unchanged against every backend (see conftest.backend)."""
from __future__ import annotations

import random
import threading
import time

import pytest

from podnet.api.objects import Resource, from_dict
from podnet.api.selector import LabelSelector
from podnet.datastore.common import InvalidObject
from podnet.datastore.interface import (AlreadyExists, Compacted, Conflict, Event, NotFound)
from builders import make_pod


def pod(name: str, ns: str = "default", labels: dict | None = None, **spec) -> Resource:
    return make_pod(ns, name, [], labels, lambda d: d["spec"].update(spec))


def namespaces(store, *names: str) -> None:
    """Namespaces the test's pods live in: the Kubernetes API, unlike the stores, refuses
    an object of a namespace that does not exist."""
    for n in names:
        store.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))


def respec(obj: Resource, **fields) -> Resource:
    """obj with spec fields changed (the rest of the spec, a valid Pod's, kept)."""
    return obj.with_spec({**obj.spec, **fields})


def node(name: str, labels: dict | None = None) -> Resource:
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "Node",
                      "metadata": {"name": name, "labels": labels or {}}})


def collect(store, from_rev: int, n: int, kinds=None, timeout: float = 10) -> list[Event]:
    """The next n events after from_rev (fails if they don't come within timeout)."""
    stop = threading.Event()
    out: list[Event] = []
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        for ev in store.watch(from_rev, kinds=kinds, stop=stop):
            out.append(ev)
            if len(out) == n:
                break
    finally:
        timer.cancel()
    assert len(out) == n, f"got {len(out)} of {n} events: {out}"
    return out


# ---- create / get ---------------------------------------------------------------------
def test_create_stamps_metadata_and_round_trips(store):
    raw = pod("a", labels={"app": "web"}).to_dict()
    raw["spec"]["extraField"] = {"kept": [1, 2, {"x": None}]}
    created = store.create(from_dict(raw))
    md = created.metadata
    assert md["resourceVersion"] == str(store.revision())
    assert len(md["uid"]) == 36 and md["creationTimestamp"].endswith("Z")
    got = store.get("Pod", "default", "a")
    assert got == created
    assert got.spec["extraField"] == {"kept": [1, 2, {"x": None}]}


def test_create_keeps_given_uid_and_defaults_namespace(store):
    raw = pod("a").to_dict()
    del raw["metadata"]["namespace"]
    raw["metadata"]["uid"] = "fixed-uid"
    created = store.create(from_dict(raw))
    assert created.metadata["namespace"] == "default"
    if store.url.startswith("kubernetes:"):
        # The API server assigns every uid (kube-apiserver ignores a client's): see
        # docs/design/datastore.md, "The Kubernetes datastore".
        assert created.uid != "fixed-uid" and len(created.uid) == 36
    else:
        assert created.uid == "fixed-uid"
    assert store.get("Pod", "default", "a").uid == created.uid


def test_create_twice_raises_already_exists(store):
    store.create(pod("a"))
    rev = store.revision()
    with pytest.raises(AlreadyExists):
        store.create(pod("a"))
    assert store.revision() == rev


def test_get_missing_raises_not_found(store):
    with pytest.raises(NotFound):
        store.get("Pod", "default", "nope")


def test_cluster_scoped_kinds_ignore_namespace(store):
    store.create(node("n1"))
    assert store.get("Node", "", "n1").name == "n1"
    assert store.get("Node", "default", "n1").namespace == ""
    assert [n.name for n in store.list("Node").items] == ["n1"]


def test_invalid_object_changes_nothing(store):
    rev = store.revision()
    with pytest.raises(InvalidObject, match="metadata.name"):
        store.create(from_dict({"kind": "Pod", "metadata": {}}))
    with pytest.raises(InvalidObject, match="kind"):
        store.create(from_dict({"metadata": {"name": "x"}}))
    with pytest.raises(InvalidObject, match="JSON"):
        store.create(from_dict({"kind": "Pod", "metadata": {"name": "x"}, "spec": {"s": {1, 2}}}))
    assert store.revision() == rev
    assert store.list("Pod").items == []


# ---- update / delete with CAS ---------------------------------------------------------
def test_update_cas(store):
    a = store.create(pod("a"))
    b = store.update(respec(a, nodeName="n1"))
    assert b.resource_version > a.resource_version
    assert b.uid == a.uid and b.metadata["creationTimestamp"] == a.metadata["creationTimestamp"]
    with pytest.raises(Conflict):
        store.update(respec(a, nodeName="stale"))
    with pytest.raises(Conflict):
        store.update(respec(b, nodeName="stale"), revision=a.resource_version)
    assert store.get("Pod", "default", "a").spec["nodeName"] == "n1"
    # revision 0: unconditional, and uid/creationTimestamp are kept when left out
    raw = pod("a").to_dict()
    c = store.update(from_dict(raw), revision=0)
    assert c.uid == a.uid and c.resource_version > b.resource_version


def test_update_cas_without_uid_in_the_object(store):
    """A manifest written by hand (no uid/creationTimestamp) with an explicit revision."""
    a = store.create(pod("a"))
    store.update(respec(a, nodeName="n1"))
    with pytest.raises(Conflict):
        store.update(pod("a", nodeName="stale"), revision=a.resource_version)
    cur = store.get("Pod", "default", "a")
    b = store.update(pod("a", nodeName="n2"), revision=cur.resource_version)
    assert b.spec["nodeName"] == "n2" and b.uid == a.uid


def test_update_missing_raises_not_found(store):
    with pytest.raises(NotFound):
        store.update(pod("ghost"), revision=0)


def test_delete_cas(store):
    a = store.create(pod("a"))
    b = store.update(respec(a, nodeName="n1"))
    with pytest.raises(Conflict):
        store.delete("Pod", "default", "a", revision=a.resource_version)
    assert store.get("Pod", "default", "a") == b
    gone = store.delete("Pod", "default", "a", revision=b.resource_version)
    assert gone.spec["nodeName"] == "n1"
    assert gone.resource_version == store.revision()
    with pytest.raises(NotFound):
        store.get("Pod", "default", "a")
    with pytest.raises(NotFound):
        store.delete("Pod", "default", "a")


def test_delete_unconditional(store):
    store.create(pod("a"))
    store.delete("Pod", "default", "a")
    assert store.list("Pod").items == []


# ---- list -----------------------------------------------------------------------------
def test_list_by_namespace_and_selector(store):
    namespaces(store, "ns1", "ns2")
    store.create(pod("b", "ns1", {"app": "web", "tier": "fe"}))
    store.create(pod("a", "ns1", {"app": "web"}))
    store.create(pod("c", "ns2", {"app": "db"}))
    store.create(node("n1", {"app": "web"}))
    res = store.list("Pod")
    assert [(p.namespace, p.name) for p in res.items] == [("ns1", "a"), ("ns1", "b"), ("ns2", "c")]
    assert res.revision == store.revision()
    assert [p.name for p in store.list("Pod", "ns1").items] == ["a", "b"]
    assert store.list("Pod", "ns3").items == []
    sel = LabelSelector.parse("app=web,tier")
    assert [p.name for p in store.list("Pod", selector=sel).items] == ["b"]
    sel = LabelSelector.from_dict({"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web", "db"]}]})
    assert [p.name for p in store.list("Pod", selector=sel).items] == ["a", "b", "c"]
    assert [p.name for p in store.list("Pod", "ns2", LabelSelector.parse("app!=web")).items] == ["c"]
    assert store.list("Pod", selector=LabelSelector.nothing()).items == []


def test_list_prefix_kinds_do_not_mix(store):
    # "Pod" must not list "PodX" objects (etcd keys are prefixes of each other).
    store.create(pod("a"))
    podx = from_dict({"kind": "PodX", "metadata": {"name": "a", "namespace": "default"}})
    if store.url.startswith("kubernetes:"):
        with pytest.raises(InvalidObject, match="no place in the Kubernetes API"):
            store.create(podx)  # the API serves only the kinds it knows
    else:
        store.create(podx)
    assert [p.kind for p in store.list("Pod").items] == ["Pod"]
    namespaces(store, "default2")
    store.create(pod("a", "default2"))
    assert [p.namespace for p in store.list("Pod", "default").items] == ["default"]


# ---- watch ----------------------------------------------------------------------------
def test_watch_sees_every_later_event_once_in_order(store):
    store.create(pod("before"))
    start = store.revision()
    a = store.create(pod("a"))
    a2 = store.update(respec(a, nodeName="n1"))
    store.create(node("n1"))
    gone = store.delete("Pod", "default", "a")
    evs = collect(store, start, 4)
    assert [(e.type, e.object.kind, e.object.name) for e in evs] == [
        ("ADDED", "Pod", "a"), ("MODIFIED", "Pod", "a"), ("ADDED", "Node", "n1"),
        ("DELETED", "Pod", "a")]
    assert [e.revision for e in evs] == [a.resource_version, a2.resource_version,
                                        start + 3, gone.resource_version]
    assert evs[1].object == a2
    assert evs[3].object.resource_version == evs[3].revision
    assert evs[3].object.spec["nodeName"] == "n1"


def test_watch_filters_kinds(store):
    start = store.revision()
    store.create(node("n1"))
    store.create(pod("a"))
    store.create(node("n2"))
    store.create(pod("b"))
    evs = collect(store, start, 2, kinds=("Pod",))
    assert [e.object.name for e in evs] == ["a", "b"]


def test_watch_live_events_and_stop(store):
    start = store.revision()
    stop = threading.Event()
    seen: list[Event] = []

    def run():
        for ev in store.watch(start, stop=stop):
            seen.append(ev)

    t = threading.Thread(target=run)
    t.start()
    for i in range(20):
        store.create(pod(f"p{i}"))
    deadline = time.time() + 10
    while len(seen) < 20 and time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    t.join(5)
    assert not t.is_alive(), "watch did not return after stop was set"
    assert [e.object.name for e in seen] == [f"p{i}" for i in range(20)]


def test_watch_resumes_across_reconnect(backend):
    """A watcher started at R sees every later event exactly once, even though the
    connection breaks (etcd restarted / store reopened) and it resumes from the last
    revision it saw."""
    writer = backend.open()
    start = writer.revision()
    total = 120
    seen: list[Event] = []
    breaks: list[Exception] = []  # watches the store broke (not our own client-side one)
    done = threading.Event()

    def write_all():
        w = backend.open()
        for i in range(total):
            for attempt in range(200):
                try:
                    w.create(pod(f"p{i}"))
                    break
                except Exception:  # the store is down for a moment
                    time.sleep(0.05)
            time.sleep(0.003)

    def watch_all():
        last = start
        stop = threading.Event()
        while len(seen) < total and not done.is_set():
            w = backend.open()
            try:
                for ev in w.watch(last, stop=stop):
                    seen.append(ev)
                    last = ev.revision
                    if len(seen) == total:
                        return
                    if len(seen) == total // 2:
                        break  # a client-side reconnect, on top of the server restart
            except Compacted:
                raise
            except Exception as e:
                breaks.append(e)
                time.sleep(0.05)
            finally:
                w.close()

    wt = threading.Thread(target=watch_all)
    wt.start()
    ww = threading.Thread(target=write_all)
    ww.start()
    time.sleep(0.15)
    backend.disrupt()
    ww.join(60)
    wt.join(30)
    done.set()
    names = [e.object.name for e in seen]
    assert names == [f"p{i}" for i in range(total)]
    revs = [e.revision for e in seen]
    assert revs == sorted(set(revs))
    assert breaks, "the disruption never broke the watch: nothing here was resumed"


def test_list_then_watch_is_consistent(backend):
    """A list at revision R plus every event after R equals a later list."""
    store = backend.open()
    for i in range(10):
        store.create(pod(f"p{i}", labels={"n": "0"}))
    stop = threading.Event()

    def churn():
        w = backend.open()
        rnd = random.Random(7)
        for i in range(150):
            name = f"p{rnd.randrange(15)}"
            try:
                op = rnd.choice(["create", "update", "delete"])
                if op == "create":
                    w.create(pod(name, labels={"n": str(i)}))
                elif op == "update":
                    cur = w.get("Pod", "default", name)
                    w.update(cur.with_metadata(labels={"n": str(i)}))
                else:
                    w.delete("Pod", "default", name)
            except (AlreadyExists, NotFound, Conflict):
                pass
            time.sleep(0.002)

    t = threading.Thread(target=churn)
    t.start()
    time.sleep(0.05)
    listed = store.list("Pod")
    state = {p.name: p for p in listed.items}
    t.join(60)
    final_rev = store.revision()
    assert final_rev > listed.revision, "the list should have been taken mid-churn"
    timer = threading.Timer(20, stop.set)
    timer.start()
    for ev in store.watch(listed.revision, kinds=("Pod",), stop=stop):
        if ev.type == "DELETED":
            assert ev.object.name in state
            del state[ev.object.name]
        else:
            assert (ev.object.name in state) == (ev.type == "MODIFIED")
            state[ev.object.name] = ev.object
        if ev.revision >= final_rev:
            break
    timer.cancel()
    final = store.list("Pod")
    assert final.revision == final_rev
    assert state == {p.name: p for p in final.items}


def test_compacted_watch_raises(backend):
    store = backend.open()
    start = store.revision()
    for i in range(5):
        store.create(pod(f"p{i}"))
    mid = store.revision()
    store.create(pod("after"))
    backend.compact(store, mid)
    with pytest.raises(Compacted) as ei:
        next(iter(store.watch(start)))
    assert ei.value.requested == start
    evs = collect(store, mid, 1)
    assert evs[0].object.name == "after"


def test_watch_latency(backend, record_property):
    store = backend.open()
    writer = backend.open()
    start = store.revision()
    stop = threading.Event()
    arrived: dict[str, float] = {}

    def run():
        for ev in store.watch(start, stop=stop):
            arrived[ev.object.name] = time.monotonic()

    t = threading.Thread(target=run)
    t.start()
    lat = []
    try:
        for i in range(25):
            t0 = time.monotonic()
            writer.create(pod(f"p{i}"))
            while f"p{i}" not in arrived and time.monotonic() - t0 < 5:
                time.sleep(0.001)
            assert f"p{i}" in arrived
            lat.append(arrived[f"p{i}"] - t0)
    finally:
        stop.set()
        t.join(5)
    lat.sort()
    median = lat[len(lat) // 2]
    record_property("watch_latency_median_ms", round(median * 1000, 2))
    print(f"\n{backend.name} watch latency median {median * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    assert median < 1.0
