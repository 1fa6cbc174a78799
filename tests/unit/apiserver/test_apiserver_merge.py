"""The three-way merge behind `apply`, checked by its properties."""
from __future__ import annotations

from hypothesis import given, strategies as st

from podnet.apiserver.apply import merge3

KEYS = st.sampled_from(["a", "b", "c", "d"])
LEAF = st.one_of(st.integers(0, 3), st.sampled_from(["x", "y"]), st.lists(st.integers(0, 2), max_size=2))
DOCS = st.recursive(LEAF, lambda inner: st.dictionaries(KEYS, inner, max_size=3), max_leaves=10)
MAPS = st.dictionaries(KEYS, DOCS, max_size=4)


@given(MAPS, MAPS, MAPS)
def test_reapplying_the_same_manifest_changes_nothing(live, last, new):
    once = merge3(live, last, new)
    assert merge3(once, new, new) == once


@given(MAPS, MAPS, MAPS)
def test_the_manifest_wins_where_it_speaks(live, last, new):
    out = merge3(live, last, new)
    for k, v in new.items():
        if not (isinstance(v, dict) and isinstance(live.get(k), dict)):
            assert out[k] == v


@given(MAPS, MAPS, MAPS)
def test_others_fields_survive_and_removed_fields_go(live, last, new):
    out = merge3(live, last, new)
    for k, v in live.items():
        if k not in new and k not in last:
            assert out[k] == v  # set by someone else: kept
        if k not in new and k in last:
            assert k not in out  # the user removed it from the manifest
