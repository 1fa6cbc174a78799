"""`podnet ipam check`'s comparison, pure: blocks against Pods and Nodes."""
from __future__ import annotations

import ipaddress

from hypothesis import given, settings, strategies as st

from podnet.api.objects import from_dict
from podnet.ipam.audit import EMPTY, LEAKED, LIVE, ORPHANED, UNKNOWN, audit
from podnet.ipam.blocks import Block, Handle
from builders import make_pod

V4 = ipaddress.ip_network("10.244.0.0/26")
V6 = ipaddress.ip_network("fd00:10:244::/122")


def pod(name, uid, node, ips=(), host=False):
    def m(d):
        d["metadata"]["uid"] = uid
        d["spec"]["hostNetwork"] = host
    return make_pod("default", name, ips, mutate=m, node=node)


def node(name):
    return from_dict({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": {"name": name}})


def block(cidr, node_name, allocs):
    return Block(cidr, "default-ipv4", node_name, dict(allocs))


def h(node_name, uid, network="podnet"):
    return str(Handle(node_name, network, uid, "eth0"))


def test_consistent_dual_stack_cluster_is_clean():
    b4 = block(V4, "n1", {1: h("n1", "u1"), 2: h("n1", "u2")})
    b6 = block(V6, "n1", {1: h("n1", "u1")})
    pods = [pod("a", "u1", "n1", ["10.244.0.1", "fd00:10:244::1"]), pod("b", "u2", "n1", ["10.244.0.2"])]
    r = audit([b4, b6], pods, [node("n1")])
    assert r.clean and not r.missing and not r.blocks
    assert [(a.address, a.status, a.pod) for a in r.allocations] == [
        ("10.244.0.1", LIVE, "default/a"), ("10.244.0.2", LIVE, "default/b"),
        ("fd00:10:244::1", LIVE, "default/a")]
    assert r.summary().startswith("3 allocations: 3 live, 0 leaked")


def test_leaked_missing_unknown_and_block_findings():
    b4 = block(V4, "n1", {
        1: h("n1", "gone"),                 # no such pod
        2: h("n2", "u2"),                   # pod runs on n2, handle says n2: live (borrowed)
        3: h("n1", "u2"),                   # same pod, wrong node
        4: h("n3", "u3"),                   # node n3 does not exist
        5: h("n1", "x", network="other"),   # someone else's network
        6: "written-by-someone-else",        # not our handle form
        7: h("n1", "u4"),                   # pod c's own (c also claims .8 and .5)
    })
    orphan = block(ipaddress.ip_network("10.244.0.64/26"), "n9", {})
    pods = [pod("b", "u2", "n2", ["10.244.0.2"]),
            pod("c", "u4", "n1", ["10.244.0.8", "10.244.0.5"]),
            pod("h", "u5", "n1", ["198.18.0.11"], host=True)]  # host network: not IPAM's
    r = audit([b4, orphan], pods, [node("n1"), node("n2")])
    status = {a.address: a.status for a in r.allocations}
    assert status == {"10.244.0.1": LEAKED, "10.244.0.2": LIVE, "10.244.0.3": LEAKED,
                      "10.244.0.4": LEAKED, "10.244.0.5": UNKNOWN, "10.244.0.6": UNKNOWN,
                      "10.244.0.7": LIVE}
    why = {a.address: a.reason for a in r.of(LEAKED)}
    assert why["10.244.0.1"] == "no pod with uid gone"
    assert why["10.244.0.3"] == "pod default/b runs on node n2, not n1"
    assert why["10.244.0.4"] == "node n3 does not exist"
    assert [(m.pod, m.address, m.reason) for m in r.missing] == [
        ("default/c", "10.244.0.8", "not allocated in any block"),
        ("default/c", "10.244.0.5", "allocated to n1/other/x/eth0")]
    assert [(b.block, b.problem) for b in r.blocks] == [("10.244.0.64/26", ORPHANED),
                                                        ("10.244.0.64/26", EMPTY)]
    assert not r.clean
    d = r.to_dict()
    assert d["clean"] is False and len(d["allocations"]) == 7 and d["missing"][0]["pod"] == "default/c"


def test_unknown_owner_and_empty_blocks_are_not_errors():
    r = audit([block(V4, "n1", {1: h("n1", "x", network="k8s-pod-network")}),
               block(ipaddress.ip_network("10.244.0.64/26"), "n1", {})], [], [node("n1")])
    assert r.clean and [a.status for a in r.allocations] == [UNKNOWN]
    assert [b.problem for b in r.blocks] == [EMPTY]


def test_invalid_pod_ip_is_missing_not_a_crash():
    r = audit([], [pod("a", "u1", "n1", ["not-an-ip"])], [node("n1")])
    assert [m.reason for m in r.missing] == ["not an IP address"] and not r.clean


# ---- properties -------------------------------------------------------------------------
NODES = ["n1", "n2", "n3"]
UIDS = [f"u{i}" for i in range(8)]
handles = st.one_of(
    st.builds(h, st.sampled_from(NODES + ["gone"]), st.sampled_from(UIDS + ["dead"])),
    st.builds(lambda n, u: h(n, u, "other"), st.sampled_from(NODES), st.sampled_from(UIDS)),
    st.just("foreign"))


@settings(max_examples=200, deadline=None)
@given(allocs=st.dictionaries(st.integers(0, 63), handles, max_size=30),
       pod_nodes=st.dictionaries(st.sampled_from(UIDS), st.sampled_from(NODES + ["gone"])),
       live_nodes=st.sets(st.sampled_from(NODES)))
def test_every_allocation_is_classified_exactly_once(allocs, pod_nodes, live_nodes):
    pods = [pod(u, u, n) for u, n in pod_nodes.items()]
    r = audit([block(V4, "n1", allocs)], pods, [node(n) for n in live_nodes])
    assert sorted(a.address for a in r.allocations) == sorted(str(V4[o]) for o in allocs)
    assert len(r.of(LIVE)) + len(r.of(LEAKED)) + len(r.of(UNKNOWN)) == len(allocs)
    for a in r.allocations:
        p = Handle.parse(a.handle)
        ours = p.network == "podnet"
        expect_live = ours and p.node in live_nodes and pod_nodes.get(p.container_id) == p.node
        assert (a.status == LIVE) == expect_live
        assert (a.status == UNKNOWN) == (not ours)
    assert r.clean == (not r.of(LEAKED))  # these pods claim no addresses: nothing is missing


@settings(max_examples=200, deadline=None)
@given(placement=st.dictionaries(st.sampled_from(UIDS), st.tuples(st.sampled_from(NODES), st.booleans())),
       data=st.data())
def test_a_consistent_state_reports_nothing(placement, data):
    """Pods placed anywhere, each with an address (two for dual stack) from its node's block:
    no leak, nothing missing, no finding beyond the nodes' empty blocks."""
    ordinals = data.draw(st.lists(st.integers(0, 63), min_size=len(placement), max_size=len(placement),
                                  unique=True))
    nets = {n: (ipaddress.ip_network(f"10.244.{i}.0/26"), ipaddress.ip_network(f"fd00:10:244:{i}::/122"))
            for i, n in enumerate(NODES)}
    allocs = {(n, f): {} for n in NODES for f in (0, 1)}
    pods = []
    for (uid, (n, dual)), o in zip(sorted(placement.items()), ordinals):
        ips = []
        for f in ((0, 1) if dual else (0,)):
            allocs[(n, f)][o] = h(n, uid)
            ips.append(str(nets[n][f][o]))
        pods.append(pod(uid, uid, n, ips))
    blocks = [block(nets[n][f], n, a) for (n, f), a in allocs.items() if a]
    r = audit(blocks, pods, [node(n) for n in NODES])
    assert r.clean and not r.missing and not r.blocks
    assert len(r.of(LIVE)) == len(r.allocations) == sum(len(a) for a in allocs.values())
