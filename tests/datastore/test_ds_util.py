"""update_with_retry and ensure_created, on every backend."""
from __future__ import annotations

import threading

import pytest

from podnet.api.objects import from_dict
from podnet.datastore.interface import NotFound
from podnet.datastore.util import RetriesExhausted, ensure_created, update_with_retry


def counter(value: int = 0):
    return from_dict({"kind": "Counter", "metadata": {"name": "c"}, "spec": {"value": value}})


def bump(obj):
    return obj.with_spec({"value": obj.spec["value"] + 1})


def test_update_with_retry_from_threads(backend):
    store = backend.open()
    store.create(counter())
    stores = [backend.open() for _ in range(4)]

    def work(s):
        for _ in range(25):
            update_with_retry(s, "Counter", "default", "c", bump)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert store.get("Counter", "default", "c").spec["value"] == 100


def test_update_with_retry_no_change_writes_nothing(store):
    created = store.create(counter())
    rev = store.revision()
    assert update_with_retry(store, "Counter", "default", "c", lambda o: None) == created
    assert store.revision() == rev


def test_update_with_retry_gives_up(store):
    store.create(counter())
    other = store

    def racing(obj):
        other.update(bump(other.get("Counter", "default", "c")))  # always wins the race
        return bump(obj)

    with pytest.raises(RetriesExhausted, match="3 conflicting"):
        update_with_retry(store, "Counter", "default", "c", racing, attempts=3)


def test_update_with_retry_missing(store):
    with pytest.raises(NotFound):
        update_with_retry(store, "Counter", "default", "c", bump)


def test_ensure_created(store):
    obj, created = ensure_created(store, counter(1))
    assert created and obj.spec["value"] == 1
    again, created = ensure_created(store, counter(2))
    assert not created and again == obj
