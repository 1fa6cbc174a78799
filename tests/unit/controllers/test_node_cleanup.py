"""Node cleanup against a real SQLite store: a deleted node's blocks go once they are empty
and have been orphaned for the grace period; a live node's, a node that came back, and a
block still holding addresses are kept."""
from __future__ import annotations

import math

from podnet.controllers.ipam_gc import IpamGarbageCollector
from podnet.controllers.node_cleanup import NodeCleanup
from podnet.datastore.sqlite import SqliteDatastore
from podnet.api.objects import from_dict
from podnet.ipam.allocator import Allocator
from podnet.ipam.blocks import Handle

from test_ipam_gc import Clock, seed, start_pod


def cidrs(s, node: str | None = None) -> set[str]:
    return {str(b.cidr) for b in Allocator(s, "").blocks() if node is None or b.node == node}


def test_a_deleted_nodes_blocks_go_after_its_addresses_and_the_grace(tmp_path):
    s = SqliteDatastore(f"sqlite:///{tmp_path}/nc.db")
    try:
        seed(s, ("n1", "n2"))
        clock = Clock()
        gc, nc = IpamGarbageCollector(s, grace=10, clock=clock), NodeCleanup(s, grace=10, clock=clock)
        _, live = start_pod(s, "web", "n1")
        start_pod(s, "a", "n2")
        n2_blocks = cidrs(s, "n2")
        assert n2_blocks and cidrs(s, "n1")
        s.delete("Node", "", "n2")
        assert gc.sweep() == [] and nc.sweep() == []
        clock.now = 10
        assert nc.sweep() == []            # orphaned long enough, but still holds pod a's address
        assert len(gc.sweep()) == 1        # the GC frees it (the node is gone: leaked)
        assert set(nc.sweep()) == n2_blocks
        assert cidrs(s, "n2") == set() and cidrs(s, "n1")
        assert live in {a for b in Allocator(s, "").blocks() for a in b.addresses_of(lambda h: True)}
    finally:
        s.close()


def test_a_node_that_registers_again_within_the_grace_keeps_its_blocks(tmp_path):
    s = SqliteDatastore(f"sqlite:///{tmp_path}/nc.db")
    try:
        seed(s, ("n1",))
        clock = Clock()
        nc = NodeCleanup(s, grace=10, clock=clock)
        pod, _ = start_pod(s, "a", "n1")
        Allocator(s, "n1", release_grace=math.inf).release(Handle("n1", "podnet", pod.uid, "eth0"))
        blocks = cidrs(s, "n1")
        assert blocks
        s.delete("Node", "", "n1")
        assert nc.sweep() == []
        clock.now = 5
        s.create(from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": "n1"}}))
        assert nc.sweep() == []
        s.delete("Node", "", "n1")         # gone again: the grace starts over
        clock.now = 12
        assert nc.sweep() == []
        clock.now = 22
        assert set(nc.sweep()) == blocks and cidrs(s) == set()
    finally:
        s.close()

