"""Small write helpers every part needs: a bounded compare-and-swap loop, create-if-absent.

`update_with_retry` is the Calico IPAM pattern: read, mutate a copy, write with CAS on
the revision just read; on Conflict, read again and re-apply the mutation. The mutation
must therefore be a pure function of the object it is given. It is the one CAS retry
loop: the write path (apiserver.write.Writer.mutate, which passes its validating `write`),
the agent's Node heartbeat, the kubelet's status writes, cascading deletes and IPAM block
releases all go through it.
"""
from __future__ import annotations

import random
import time
from typing import Callable

from podnet.api.objects import Resource
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore

DEFAULT_ATTEMPTS = 100
Write = Callable[[Resource, Resource], Resource]


class RetriesExhausted(Conflict):
    """Every CAS attempt lost a race; the object is left as the last winner wrote it."""


def update_with_retry(store: Datastore, kind: str, namespace: str, name: str,
                      mutate: Callable[[Resource], Resource | None],
                      attempts: int = DEFAULT_ATTEMPTS, write: Write | None = None,
                      first: Resource | None = None) -> Resource:
    """Apply `mutate` to the current object and store the result with CAS, retrying on
    Conflict. `mutate` returns the new object, or None for "no change" (then nothing is
    written and the current object is returned). `write(current, new)` stores `new` with
    CAS on `current`'s revision (default: the store's update). `first`, a copy just
    read (from a list), saves the first read. Raises NotFound,
    RetriesExhausted, and whatever `write` raises but Conflict."""
    for attempt in range(attempts):
        current = first if first is not None and attempt == 0 else store.get(kind, namespace, name)
        new = mutate(current)
        if new is None:
            return current
        try:
            if write is not None:
                return write(current, new)
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
