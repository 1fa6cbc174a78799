"""The answer cache's eviction against a model: bounded by its byte budget, never emptied
at once, and whatever was touched within the last half budget of insertions is still
there with the value last stored."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from podnet.dns.cache import ENTRY_OVERHEAD, AnswerCache, entry_size

BUDGET = 8 * (ENTRY_OVERHEAD + 64)  # room for a handful of entries: evictions happen often
KEYS = [bytes([k]) * 4 for k in range(12)]

ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.binary(max_size=120), st.booleans()),
    st.tuples(st.just("get"), st.sampled_from(KEYS), st.just(b""), st.just(False)),
), max_size=200)


def _get(c: AnswerCache, key: bytes):
    """What the responder does on a lookup: the current generation, else promote."""
    hit = c.cur.udp.get(key)
    if hit is None and c.promote(key):
        hit = c.cur.udp.get(key)
    return hit


@settings(max_examples=400, deadline=None)
@given(ops)
def test_eviction_keeps_the_recent_half_budget_and_stays_bounded(seq):
    c = AnswerCache(BUDGET)
    value: dict[bytes, tuple] = {}           # the model: last value stored per key
    touches: list[tuple[bytes, int]] = []    # every insertion (put or promotion), with its size
    biggest = 0
    for op, key, payload, edns in seq:
        if op == "put":
            v = (payload, payload + b"!")
            if edns:
                c.put(key, udp=v, edns=v, templates=(payload,))
                size = entry_size(key, v, v, (payload,))
            else:
                c.put(key, udp=v)
                size = entry_size(key, v)
            value[key] = v
            touches.append((key, size))
            biggest = max(biggest, size)
            assert _get(c, key) == v  # a put is never evicted by itself
        else:
            in_old = key not in c.cur.udp and key in c.old.udp
            hit = _get(c, key)
            if hit is not None:
                assert hit == value[key]
                if in_old:
                    touches.append((key, entry_size(key, *(c.cur.udp.get(key), c.cur.edns.get(key),
                                                           c.cur.templates.get(key)))))
        assert c.size <= BUDGET + 2 * biggest
        # Every key whose last touch is within the trailing half budget is present.
        window, seen = 0, set()
        for k, size in reversed(touches):
            window += size
            if window > BUDGET // 2:
                break
            if k not in seen:
                seen.add(k)
                assert c.cur.udp.get(k) == value[k] or c.old.udp.get(k) == value[k]


def test_rotation_drops_only_the_older_generation():
    c = AnswerCache(4 * (ENTRY_OVERHEAD + 16))
    keys = [bytes([i]) * 4 for i in range(20)]
    for k in keys:
        c.put(k, udp=(b"x" * 6, b"y" * 6))
        assert len(c) >= 1
    assert c.rotations > 2
    assert keys[-1] in c.cur.udp and keys[0] not in c.cur.udp and keys[0] not in c.old.udp
    assert len(c) >= 2  # the newest and the generation before it: never empty after a rotation
