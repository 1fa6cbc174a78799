"""The raw netlink batches of fastpath.py do to a real kernel exactly what libnftables does
with the same partial-sync scripts: two node namespaces, one session each (fast, and
`fast=False`), the same sequence of Service and EndpointSlice changes, and after each the
two tables, listed by nft, are equal. A refused batch changes nothing and says why."""
from __future__ import annotations

import json
import subprocess

import pytest

from netnames import unique_netns
from podnet.agent.service_proxy_role import ServiceProxyRole
from podnet.calc.model import ClusterState
from podnet.dataplane.nft.runner import NftError
from podnet.dataplane.nft.services import T
from podnet.dataplane.nft.session import NftSession
from builders import endpoint, make_service, make_slice
from svc_fixture import NODE_IPS, local_objects, objects

pytestmark = pytest.mark.root


def listed(ns: str) -> dict:
    """The table as nft lists it, each set's elements sorted (a hash set lists in hash order)."""
    cp = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", *T.split()],
                        capture_output=True, text=True, check=True)
    out: dict = {"chains": {}, "rules": {}, "sets": {}}
    for o in json.loads(cp.stdout)["nftables"]:
        if "chain" in o:
            out["chains"][o["chain"]["name"]] = o["chain"].get("hook")
        elif "rule" in o:
            r = o["rule"]
            out["rules"].setdefault(r["chain"], []).append(json.dumps(r["expr"], sort_keys=True))
        elif "set" in o or "map" in o:
            s = o.get("set") or o.get("map")
            out["sets"][s["name"]] = sorted(json.dumps(e, sort_keys=True) for e in s.get("elem", []))
    return out


class Node:
    def __init__(self, ns: str, fast: bool):
        self.ns = ns
        self.session = NftSession(ns, fast=fast)
        self.role = ServiceProxyRole(NODE_IPS)
        svcs, slices = objects()
        lsvcs, lslices = local_objects()
        self.state = ClusterState.from_objects([*svcs, *slices, *lsvcs, *lslices], "node-1")

    def sync(self, *objs, gone=()) -> str:
        for o in objs:
            self.state.put(o)
        for o in gone:
            self.state.remove(o.kind, o.namespace, o.name)
        return self.role.sync(self.state, {o.key for o in (*objs, *gone)}, self.session)


def _nodeport(port):
    def m(d):
        d["spec"]["type"] = "NodePort"
        d["spec"]["ports"][0]["nodePort"] = port
    return m


# one step each: (objects put, objects removed)
STEPS = [
    # an endpoint replaced (the bench's change), then one added: the draw rule's N changes
    ([make_slice("default", "web", [endpoint("10.244.1.2"), endpoint("10.244.2.77", node="node-2")])], []),
    ([make_slice("default", "web", [endpoint("10.244.1.2"), endpoint("10.244.2.77", node="node-2"),
                                    endpoint("10.244.3.78", node="node-3")])], []),
    # a new NodePort Service with endpoints: a chain, verdict elements, np4
    ([make_service("default", "fresh", _nodeport(30111), ip="10.96.0.99"),
      make_slice("default", "fresh", [endpoint("10.244.1.50"), endpoint("10.244.2.50", node="node-2")])], []),
    # its endpoints go: the chain is flushed and deleted, the ports reject (noep, npnoep)
    ([make_slice("default", "fresh", [])], []),
    # and the Service goes
    ([], [make_service("default", "fresh", ip="10.96.0.99")]),
    # the Service without endpoints gets one
    ([make_slice("default", "empty", [endpoint("10.244.2.60", node="node-2")])], []),
    # eTP Local loses its endpoint here: nodePort and LB elements `drop`, -local/-ext/-fw chains go
    ([make_slice("default", "etp", [endpoint("10.244.2.22", node="node-2")]),
      make_slice("default", "lb-fw", [endpoint("10.244.2.29", node="node-2")])], []),
    # and gets it back
    ([make_slice("default", "etp", [endpoint("10.244.1.22"), endpoint("10.244.2.22", node="node-2")]),
      make_slice("default", "lb-fw", [endpoint("10.244.1.29"), endpoint("10.244.2.29", node="node-2")])], []),
    # IPv6 keys and values
    ([make_slice("default", "itp6", [endpoint("fd00:10:244:2::26", node="node-2"), endpoint("fd00:10:244:1::30")],
                 family="IPv6")], []),
]


def test_partial_syncs_equal_libnftables():
    names = [unique_netns("fp"), unique_netns("fp")]
    nodes: list[Node] = []
    try:
        for ns in names:
            subprocess.run(["ip", "netns", "add", ns], check=True)
        nodes = [Node(names[0], fast=True), Node(names[1], fast=False)]
        for n in nodes:
            n.role.sync(n.state, None, n.session)
        assert listed(names[0]) == listed(names[1])
        for put, gone in STEPS:
            scripts = [n.sync(*put, gone=gone) for n in nodes]
            assert scripts[0] == scripts[1] and scripts[0]
            assert listed(names[0]) == listed(names[1]), scripts[0]
        # the fast side sent batches (the steps whose scripts it translates), the other none
        assert nodes[0].session.applied_fast >= 6 and nodes[1].session.applied_fast == 0
        # a refused batch: nothing of it lands, and the error names the statement
        before = listed(names[0])
        bad = (f"add element {T} vips4 {{ 10.96.9.9 }}\n"
               f"delete element {T} hairpin4 {{ 10.244.9.9 . 10.244.9.9 }}\n")
        with pytest.raises(NftError, match="No such file or directory: delete element"):
            nodes[0].session.apply(bad)
        assert listed(names[0]) == before
        # the helper's one netlink socket goes on: the next batch lands (a late reply of the
        # refused one would carry another sequence number)
        fast = nodes[0].session.applied_fast
        nodes[0].session.apply(f"add element {T} vips4 {{ 10.96.9.9 }}\n")
        assert nodes[0].session.applied_fast == fast + 1
        assert '"10.96.9.9"' in listed(names[0])["sets"]["vips4"]
    finally:
        for n in nodes:
            n.session.close()
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
