"""The rendered ruleset of a fixed set of services, compared to tests/golden/services/.
PODNET_UPDATE_GOLDEN=1 rewrites the files (review the diff before committing)."""
from __future__ import annotations


import pytest

from podnet.dataplane.nft.services import render_full, render_partial
from golden_files import GOLDEN_DIR, check_golden
from builders import endpoint, make_slice
from svc_fixture import NODE, local_objects, local_table, objects, table
from podnet.calc.services import build_table, entries_for_service

GOLDEN = GOLDEN_DIR / "services"


def check(name: str, text: str) -> None:
    check_golden(GOLDEN / name, text)


def test_full_sync_golden():
    script, _ = render_full(table(), None)
    check("full.nft", script)


def test_resync_golden_keeps_affinity_sets():
    _, state = render_full(table(), None)
    script, _ = render_full(table(), state)
    check("resync.nft", script)
    assert "delete table" not in script and "delete set" not in script


def test_partial_golden_one_endpoint_change():
    _, state = render_full(table(), None)
    svcs, slices = objects()
    web = next(s for s in svcs if s.name == "web")
    new_slice = make_slice("default", "web", [endpoint("10.244.1.2"), endpoint("10.244.2.2"),
                                              endpoint("10.244.3.2")])
    changed = {(e.id, e.family): e for e in entries_for_service(web, [new_slice])}
    script = render_partial(state, changed)
    check("partial-endpoint-change.nft", script)


def test_partial_golden_delete_and_empty():
    _, state = render_full(table(), None)
    t = table()
    changed = {k: None for k, e in t.entries.items() if e.name in ("sticky", "np")}
    script = render_partial(state, changed)
    check("partial-delete.nft", script)


def test_local_traffic_policies_full_golden():
    script, _ = render_full(local_table(), None)
    check("local-policies-full.nft", script)


def test_local_traffic_policies_partial_golden_local_endpoint_leaves_and_arrives():
    """itp loses its node-1 endpoint (its ClusterIP now drops), etp-none gains one (its
    NodePort now answers, unmasqueraded)."""
    _, state = render_full(local_table(), None)
    svcs, _ = local_objects()
    by_name = {s.name: s for s in svcs}
    new = {"itp": make_slice("default", "itp", [endpoint("10.244.2.20", node="node-2")]),
           "etp-none": make_slice("default", "etp-none", [endpoint("10.244.2.23", node="node-2"),
                                                          endpoint("10.244.1.23")])}
    changed = {(e.id, e.family): e for name, sl in new.items()
               for e in entries_for_service(by_name[name], [sl], NODE)}
    script = render_partial(state, changed)
    check("local-policies-partial.nft", script)
