"""The store cannot be poisoned: an entry that does not decode (written as raw bytes, as a
disk fault or a buggy writer leaves it) is skipped and reported by every reader, the rest
keeps being served, and `check`/`remove` find and delete it. On SQLite and a real etcd."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from podnet.agent.metrics import AgentMetrics
from podnet.datastore.cache import Informer
from podnet.datastore.decoding import skipped_counts
from podnet.datastore.interface import NotFound, Undecodable
from builders import make_pod
from poisoning import poison, put_raw

GARBAGE = {
    "not JSON": b"{this is not json",
    "not UTF-8": b"\xff\xfe\x00garbage",
    "empty": b"",
    "a JSON list": b"[1, 2, 3]",
    "another kind": b'{"kind": "Service", "metadata": {"name": "bad", "namespace": "default"}}',
    "another name": b'{"kind": "Pod", "metadata": {"name": "other", "namespace": "default"}}',
    "metadata a string": b'{"kind": "Pod", "metadata": "x"}',
    "spec a string": b'{"kind": "Pod", "metadata": {"name": "bad", "namespace": "default"}, "spec": "x"}',
    "labels a list": b'{"kind": "Pod", "metadata": {"name": "bad", "namespace": "default", "labels": []}}',
    "nested too deep": b"[" * 100_000,
}


def pod(name: str, ns: str = "default"):
    return make_pod(ns, name, [], {"app": "web"})



@pytest.fixture
def backend(store_backend):
    """Poison goes into a store's own storage: the Kubernetes datastore has none (the API
    server in front of such a store skips its bad entries as the store's readers do)."""
    return store_backend

@pytest.mark.parametrize("what", sorted(GARBAGE))
def test_list_get_check_skip_and_name_the_bad_entry(backend, caplog, what):
    store = backend.open()
    for n in ("a", "z"):
        store.create(pod(n))
    rev = poison(store, "Pod", "default", "bad", GARBAGE[what])
    before = skipped_counts().get("Pod", 0)
    with caplog.at_level(logging.WARNING, logger="podnet.datastore"):
        res = store.list("Pod")
    assert [o.name for o in res.items] == ["a", "z"]
    assert [(b.key, b.revision) for b in res.skipped] == [("Pod/default/bad", rev)]
    assert f"skipped undecodable entry Pod/default/bad at revision {rev}" in caplog.text
    assert skipped_counts()["Pod"] == before + 1
    metrics = AgentMetrics().prometheus("n1")  # what an agent's /metrics serves
    assert f'podnet_datastore_undecodable_skipped_total{{kind="Pod"}} {before + 1}' in metrics
    assert [o.name for o in store.list("Pod", "default").items] == ["a", "z"]
    with pytest.raises(Undecodable, match=f"Pod/default/bad \\(revision {rev}\\) cannot be decoded"):
        store.get("Pod", "default", "bad")
    assert store.get("Pod", "default", "a").name == "a"
    [bad] = store.check()
    assert (bad.key, bad.revision) == ("Pod/default/bad", rev) and bad.reason
    assert store.check("Service") == []


def test_remove_deletes_only_the_named_entry_with_cas(backend):
    store = backend.open()
    store.create(pod("a"))
    rev = poison(store, "Pod", "default", "bad", b"garbage")
    with pytest.raises(Exception, match="stale"):
        store.remove("Pod/default/bad", revision=rev - 1)
    store.remove("Pod/default/bad", revision=rev)
    assert store.check() == []
    assert [o.name for o in store.list("Pod").items] == ["a"]
    with pytest.raises(NotFound):
        store.remove("Pod/default/bad")
    with pytest.raises(NotFound):
        store.remove("Pod/default/never-was")


def test_delete_and_update_repair_a_bad_entry(backend):
    store = backend.open()
    poison(store, "Pod", "default", "x", b"garbage")
    poison(store, "Pod", "default", "y", b"[]")
    gone = store.delete("Pod", "default", "x")
    assert gone.key.name == "x"
    fixed = store.update(pod("y"), revision=0)  # an unconditional write replaces it whole
    assert store.get("Pod", "default", "y") == fixed
    assert store.check() == []


def test_watch_reports_a_bad_write_as_deleted_and_goes_on(backend):
    store = backend.open()
    start = store.revision()
    store.create(pod("a"))
    poison(store, "Pod", "default", "a", b"not json")
    store.create(pod("b"))
    stop = threading.Event()
    timer = threading.Timer(10, stop.set)
    timer.start()
    got = []
    try:
        for ev in store.watch(start, kinds=("Pod",), stop=stop):
            got.append((ev.type, ev.object.name))
            if len(got) == 3:
                break
    finally:
        timer.cancel()
    assert got == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b")]


def test_informer_serves_the_rest_and_follows_new_writes(backend):
    store = backend.open()
    store.create(pod("a"))
    poison(store, "Pod", "default", "bad", b"\x00\x01 not an object")
    with Informer(backend.open(), ["Pod"], name="poison-test") as inf:
        assert inf.wait_synced(10)
        assert [o.name for o in inf.list("Pod")] == ["a"]
        store.create(pod("new"))
        poison(store, "Pod", "default", "a", b"{")  # a live object turning into garbage
        assert inf.wait_until(lambda i: [o.name for o in i.list("Pod")] == ["new"], 10)
        store.remove("Pod/default/a")
        store.create(pod("after"))
        assert inf.wait_until(lambda i: [o.name for o in i.list("Pod")] == ["after", "new"], 10)
        assert inf.relists == 1  # never a relist loop


@pytest.mark.etcd
def test_etcd_key_that_names_no_object_is_found_and_removable(etcd_backend):
    store = etcd_backend.open()
    store.create(pod("a"))
    rev = put_raw(store, "Pod/only-two-parts", b"{}")
    assert [o.name for o in store.list("Pod").items] == ["a"]
    [bad] = store.check()
    assert (bad.key, bad.revision) == ("Pod/only-two-parts", rev)
    store.remove("Pod/only-two-parts")
    assert store.check() == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.sampled_from(list(GARBAGE.values())))
def test_any_bytes_never_break_a_reader(backend, value):
    store = backend.open()
    if not store.list("Pod").items:
        store.create(pod("good"))
    poison(store, "Pod", "default", "fuzzed", value)
    names = [o.name for o in store.list("Pod").items]
    assert "good" in names and set(names) <= {"good", "fuzzed"}
    bad = [b.key for b in store.check("Pod")]
    assert ("fuzzed" in names) == (bad == [])
