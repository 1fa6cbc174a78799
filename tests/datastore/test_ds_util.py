"""update_with_retry and ensure_created, on every backend."""
from __future__ import annotations

import threading

import pytest

from podnet.api.objects import from_dict
from podnet.datastore.interface import NotFound
from podnet.datastore.util import RetriesExhausted, ensure_created, update_with_retry


KEY = ("Namespace", "", "counter")   # a kind every backend holds, the Kubernetes API included


def counter(value: int = 0):
    return from_dict({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "counter", "annotations": {"count": str(value)}}})


def count(obj) -> int:
    return int(obj.metadata["annotations"]["count"])


def bump(obj):
    return obj.with_metadata(annotations={"count": str(count(obj) + 1)})


def test_update_with_retry_from_threads(backend):
    store = backend.open()
    store.create(counter())
    stores = [backend.open() for _ in range(4)]

    def work(s):
        for _ in range(25):
            update_with_retry(s, *KEY, bump)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert count(store.get(*KEY)) == 100


def test_update_with_retry_no_change_writes_nothing(store):
    created = store.create(counter())
    rev = store.revision()
    assert update_with_retry(store, *KEY, lambda o: None) == created
    assert store.revision() == rev


def test_update_with_retry_gives_up(store):
    store.create(counter())
    other = store

    def racing(obj):
        other.update(bump(other.get(*KEY)))  # always wins the race
        return bump(obj)

    with pytest.raises(RetriesExhausted, match="3 conflicting"):
        update_with_retry(store, *KEY, racing, attempts=3)


def test_update_with_retry_missing(store):
    with pytest.raises(NotFound):
        update_with_retry(store, *KEY, bump)


def test_ensure_created(store):
    obj, created = ensure_created(store, counter(1))
    assert created and count(obj) == 1
    again, created = ensure_created(store, counter(2))
    assert not created and again == obj
