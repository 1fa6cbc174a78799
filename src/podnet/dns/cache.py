"""The answer cache: pre-built responses by lower-cased question, bounded by an estimate of
their memory, evicting one generation at a time. Pure (no I/O, no locks).

Two generations of dicts: answers go into the current one; when its estimated size passes
half the budget it becomes the old one and the previous old one is dropped. A lookup that
misses the current generation but finds the key in the old one moves it over (so what is
asked keeps its answer). That is segmented LRU at the price of a dict lookup: anything
touched within the last half budget's worth of insertions is still cached, the cache
never exceeds its budget by more than one entry, and it is never emptied all at once
(the old way: 100,000 entries, then cleared, which at 100k Service names meant nothing
was ever answered from it).

Each generation holds four dicts keyed alike (any of them may lack a key):
`udp` (key -> (RD 0, RD 1) plain UDP answers from byte 2 on, or a rotating set of them:
the server's inlined fast path reads it), `edns` (the same with our OPT), `templates`
(key -> templates for the slow path: TCP, big EDNS sizes) and `deps` (key -> what a
positive answer was built from, to keep it across zones).
"""
from __future__ import annotations

from typing import Any

# Python's own bytes per cached answer beyond the lengths of its bytes objects: the key's
# and answers' object headers, the tuples and dict slots of the four dicts (RSS grew by
# ~1.2 KB an answer over the 10k-name mix's 46,664 slow-path answers, ~400 of them
# outside the bytes objects).
ENTRY_OVERHEAD = 400
# The same for an answer `keep` stores (one key, one tuple of two bytes objects, one dict):
# key and bytes headers ~100, the tuple 56, the dict slot ~45.
KEPT_OVERHEAD = 200


class Gen:
    __slots__ = ("udp", "edns", "templates", "deps", "size")

    def __init__(self) -> None:
        self.udp: dict[bytes, Any] = {}
        self.edns: dict[bytes, Any] = {}
        self.templates: dict[bytes, tuple[bytes, ...]] = {}
        self.deps: dict[bytes, tuple] = {}
        self.size = 0

    def __len__(self) -> int:
        return len(self.udp.keys() | self.edns.keys() | self.templates.keys())


def _answer_bytes(v: Any) -> int:
    """Bytes in a cached value: bytes, tuples of them, or an object with `variants`."""
    if v is None:
        return 0
    if isinstance(v, bytes):
        return len(v)
    if isinstance(v, tuple):
        return sum(_answer_bytes(x) for x in v)
    return sum(_answer_bytes(x) for x in getattr(v, "variants", ()))


def entry_size(key: bytes, udp: Any = None, edns: Any = None, templates: Any = None) -> int:
    return ENTRY_OVERHEAD + len(key) + _answer_bytes(udp) + _answer_bytes(edns) + _answer_bytes(templates)


class AnswerCache:
    def __init__(self, max_bytes: int = 128 << 20):
        self.max_bytes = max_bytes
        self.cur, self.old = Gen(), Gen()
        self.rotations = 0

    def __len__(self) -> int:
        return len(self.cur) + len(self.old)

    @property
    def size(self) -> int:
        return self.cur.size + self.old.size

    def put(self, key: bytes, udp: Any = None, edns: Any = None, templates: Any = None,
            dep: tuple | None = None) -> None:
        """Add (or complete) the answers for `key`; parts left None are not touched."""
        size = entry_size(key, udp, edns, templates)
        if self.cur.size and self.cur.size + size > self.max_bytes // 2:
            self.rotate()
        cur = self.cur
        cur.size += size
        if udp is not None:
            cur.udp[key] = udp
        if edns is not None:
            cur.edns[key] = edns
        if templates is not None:
            cur.templates[key] = templates
        if dep is not None:
            cur.deps[key] = dep

    def keep(self, key: bytes, response: bytes, edns: bool) -> None:
        """Keep a response whose question is `key` itself (lower case) as the answer for
        `key`: from byte 2 on, with the RD bit as asked and flipped."""
        t, u = response[2:], bytes((response[2] ^ 1,)) + response[3:]
        entry = (u, t) if response[2] & 1 else (t, u)
        size = KEPT_OVERHEAD + len(key) + 2 * len(t)
        if self.cur.size and self.cur.size + size > self.max_bytes // 2:
            self.rotate()
        self.cur.size += size
        (self.cur.edns if edns else self.cur.udp)[key] = entry

    def promote(self, key: bytes) -> bool:
        """Move `key`'s answers from the old generation into the current one; False when
        the old generation has none."""
        old = self.old
        udp, edns, tmpls = old.udp.pop(key, None), old.edns.pop(key, None), old.templates.pop(key, None)
        dep = old.deps.pop(key, None)
        if udp is None and edns is None and tmpls is None:
            return False
        self.put(key, udp, edns, tmpls, dep)
        return True

    def rotate(self) -> None:
        self.old, self.cur = self.cur, Gen()
        self.rotations += 1

    def generations(self) -> tuple[Gen, Gen]:
        """Oldest first, so a newer answer for a key wins when both are copied over."""
        return self.old, self.cur
