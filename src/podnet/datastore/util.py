"""Small write helpers every part needs: a bounded compare-and-swap loop, create-if-absent.

`update_with_retry` is the Calico IPAM pattern: read, mutate a copy, write with CAS on
the revision just read; on Conflict, read again and re-apply the mutation. The mutation
must therefore be a pure function of the object it is given.
"""
from __future__ import annotations

import random
import time
from typing import Callable

from podnet.api.objects import Resource
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore

DEFAULT_ATTEMPTS = 100


class RetriesExhausted(Conflict):
    """Every CAS attempt lost a race; the object is left as the last winner wrote it."""


def update_with_retry(store: Datastore, kind: str, namespace: str, name: str,
                      mutate: Callable[[Resource], Resource | None],
                      attempts: int = DEFAULT_ATTEMPTS) -> Resource:
    """Apply `mutate` to the current object and store the result with CAS, retrying on
    Conflict. `mutate` returns the new object, or None for "no change" (then nothing is
    written and the current object is returned). Raises NotFound, RetriesExhausted."""
    for attempt in range(attempts):
        current = store.get(kind, namespace, name)
        new = mutate(current)
        if new is None:
            return current
        try:
            return store.update(new, revision=current.resource_version)
        except Conflict:
            # Jittered backoff keeps many contenders from retrying in lockstep.
            time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
    raise RetriesExhausted(f"{kind} {namespace + '/' if namespace else ''}{name}: "
                           f"gave up after {attempts} conflicting updates")


def ensure_created(store: Datastore, obj: Resource) -> tuple[Resource, bool]:
    """Create `obj` unless an object with its key exists. Returns (stored object, created?).
    An existing object is returned as stored, not overwritten."""
    try:
        return store.create(obj), True
    except AlreadyExists:
        return store.get(obj.kind, obj.namespace, obj.name), False
