"""lab/topology.py: derived names and the address plan. Pure, no root."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from podnet.api.defaults import BENCH_PREFIX, TEST_PREFIX
from podnet.lab.topology import (MAX_NODES, RESERVED_NAMES, NodeSpec, TopologyError, is_lab_netns, make_spec,
                                 spec_from_dict, spec_to_dict, validate_name)

LAB_NAMES = st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True).filter(lambda n: n not in RESERVED_NAMES)


def test_names_and_addresses_follow_the_plan():
    s = make_spec("t3k", 3, dual_stack=True)
    assert s.underlay_netns == "pn-t3k-ul" and s.router_netns == "pn-t3k-rt"
    assert s.outside_netns == "pn-t3k-out"
    assert [n.netns for n in s.nodes] == ["pn-t3k-n1", "pn-t3k-n2", "pn-t3k-n3"]
    assert [n.ip4 for n in s.nodes] == ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
    assert [n.ip6 for n in s.nodes] == ["fd00:198:18::11", "fd00:198:18::12", "fd00:198:18::13"]
    assert (s.router_ul4, s.router_out4, s.echo4) == ("198.18.0.1", "203.0.113.1", "203.0.113.10")
    assert (s.router_ul6, s.echo6) == ("fd00:198:18::1", "fd00:203:113::10")
    assert all(ns.startswith(s.prefix) for ns in s.all_netns)


def test_single_stack_nodes_have_no_ipv6():
    assert all(n.ip6 is None for n in make_spec("a", 2).nodes)


@pytest.mark.parametrize("bad", ["", "A", "1abc", "a-b", "abcdefghijk", "a b", "a/b"])
def test_bad_lab_names_are_refused_with_the_rule(bad):
    with pytest.raises(TopologyError, match="lab name"):
        validate_name(bad)


@pytest.mark.parametrize("reserved", ["cni", "cnib", "svc", "pol", "dns", "ds"])
def test_names_whose_prefix_tests_and_benches_used_are_refused(reserved):
    with pytest.raises(TopologyError, match="reserved"):
        make_spec(reserved)


@given(LAB_NAMES, st.uuids(), st.integers(1, 12))
def test_a_lab_owns_exactly_the_namespaces_it_makes(name, uid, nodes):
    s = make_spec(name, nodes)
    assert all(is_lab_netns(name, ns) for ns in s.all_netns + [s.pod_netns(str(uid))])


@given(LAB_NAMES, LAB_NAMES, st.sampled_from(["ul", "rt", "out", "n1", "p0f6c2a1e77"]))
def test_no_lab_owns_another_labs_namespace(a, b, role):
    assert is_lab_netns(a, f"pn-{b}-{role}") == (a == b)


@given(LAB_NAMES, st.from_regex(r"[a-z0-9-]{1,30}", fullmatch=True))
def test_no_lab_owns_a_test_or_bench_namespace(name, rest):
    for prefix in (TEST_PREFIX, BENCH_PREFIX):
        assert not is_lab_netns(name, prefix + rest)


@pytest.mark.parametrize("other", ["pn-x1-bench", "pn-x1-node", "pn-x1-n1-a", "pn-x1-p", "pn-x1-pxyz",
                                   "pn-x1-n0", "pn-x10-n1", "pn-x1", "pn-x1-out2"])
def test_a_name_merely_sharing_the_prefix_is_not_the_labs(other):
    assert not is_lab_netns("x1", other)


@pytest.mark.parametrize("kw,field", [({"nodes": 0}, "--nodes"), ({"nodes": MAX_NODES + 1}, "--nodes"),
                                      ({"encap": "gre"}, "--encap"), ({"datastore": "redis"}, "--datastore")])
def test_bad_options_name_the_option(kw, field):
    with pytest.raises(TopologyError, match=field):
        make_spec("ok", **kw)


def test_unknown_node_names_the_lab_and_its_nodes():
    with pytest.raises(TopologyError, match="n1, n2"):
        make_spec("ok", 2).node("n7")


@given(st.uuids())
def test_pod_netns_is_prefixed_short_and_stable(uid):
    s = make_spec("t1", 1)
    ns = s.pod_netns(str(uid))
    assert ns.startswith("pn-t1-p") and len(ns) <= 20 and ns == s.pod_netns(str(uid))


@given(st.integers(1, MAX_NODES), st.booleans(), st.sampled_from(["none", "vxlan"]),
       st.sampled_from(["sqlite", "etcd"]))
def test_spec_round_trips_and_addresses_are_unique(n, ds, encap, store):
    s = make_spec("rt", n, ds, encap, store)
    assert spec_from_dict(spec_to_dict(s)) == s
    ips = [ip for node in s.nodes for ip in node.ips]
    assert len(set(ips)) == len(ips)
    assert s.router_ul4 not in ips


@pytest.mark.parametrize("reserved", sorted(RESERVED_NAMES))
def test_down_refuses_a_reserved_name_before_touching_anything(reserved, monkeypatch, tmp_path):
    from podnet.lab import down
    from podnet.lab.state import LabState

    def reached(*_a, **_k):
        raise AssertionError("teardown went on with a reserved name")
    monkeypatch.setattr(down.procs, "stop_recorded", reached)
    monkeypatch.setattr(down, "run", reached)
    with pytest.raises(TopologyError, match="reserved"):
        down.teardown(reserved, LabState(tmp_path))


def test_zones_spread_nodes_round_robin_and_reach_the_agents():
    from podnet.lab.topology import spec_from_dict, spec_to_dict, zone_name
    from podnet.lab.up import agent_argv
    s = make_spec("z", 5, zones=2)
    assert [n.zone for n in s.nodes] == ["a", "b", "a", "b", "a"]
    assert spec_from_dict(spec_to_dict(s)) == s  # `podnet down` and friends rebuild it
    assert agent_argv(s, "n2", "sqlite:///x")[-2:] == ["--node-label", "topology.kubernetes.io/zone=b"]
    assert all(n.zone == "" for n in make_spec("z", 2).nodes)
    assert "--node-label" not in agent_argv(make_spec("z", 2), "n1", "sqlite:///x")
    assert [zone_name(i) for i in (0, 25, 26, 27)] == ["a", "z", "aa", "ab"]
    with pytest.raises(TopologyError, match="--zones 3"):
        make_spec("z", 2, zones=3)


# ---- nodes that come and go (issue 17 §4: `podnet node add/delete`) -------------------------
def test_a_saved_spec_keeps_node_names_and_an_old_count_still_loads():
    s = make_spec("nd", 3, dual_stack=True)
    assert spec_to_dict(s)["nodes"] == ["n1", "n2", "n3"]
    old = {**spec_to_dict(s), "nodes": 3}  # lab.json written before nodes could be added
    assert spec_from_dict(old) == s


@pytest.mark.parametrize("bad", ["3", {"n1": 1}, ["n1", 2], None, True])
def test_a_saved_spec_with_unreadable_nodes_is_refused_clearly(bad):
    with pytest.raises(TopologyError, match="neither a count nor a list"):
        spec_from_dict({"name": "nd", "nodes": bad})


def test_an_added_node_gets_what_its_name_always_derives():
    s = make_spec("nd", 2, dual_stack=True, zones=2).with_node("n7")
    n7 = s.node("n7")
    assert (n7.netns, n7.ip4, n7.ip6, n7.bridge_port, n7.zone) == \
        ("pn-nd-n7", "198.18.0.17", "fd00:198:18::17", "n7", "a")
    assert n7 == make_spec("nd", 7, dual_stack=True, zones=2).node("n7")  # as `up --nodes 7` makes it
    assert [n.name for n in s.with_node("n3").nodes] == ["n1", "n2", "n3", "n7"]  # index order
    assert spec_from_dict(spec_to_dict(s)) == s
    assert all(is_lab_netns("nd", ns) for ns in s.all_netns)


@pytest.mark.parametrize("name,why", [("n2", "already has"), ("web", "named n1"), ("n0", "named n1"),
                                      ("n245", "named n1"), ("N3", "named n1"), ("n03", "named n1"),
                                      ("p1", "named n1"), ("", "named n1")])
def test_adding_a_bad_or_existing_node_is_refused(name, why):
    with pytest.raises(TopologyError, match=why):
        make_spec("nd", 2).with_node(name)


def test_a_full_lab_refuses_another_node():
    with pytest.raises(TopologyError, match="the most"):
        make_spec("nd", MAX_NODES).with_node("n200")


def test_deleting_a_node_keeps_the_others_and_refuses_the_control_plane_or_an_unknown_one():
    s = make_spec("nd", 3)
    assert [n.name for n in s.without_node("n2").nodes] == ["n1", "n3"]
    assert s.without_node("n2").node("n3") == s.node("n3")
    with pytest.raises(TopologyError, match="control plane"):
        s.without_node("n1")
    with pytest.raises(TopologyError, match="has no node 'n9'"):
        s.without_node("n9")


def test_zones_survive_a_lab_shrinking_below_their_number():
    s = make_spec("nd", 3, zones=3).without_node("n3").without_node("n2")
    assert spec_from_dict(spec_to_dict(s)) == s


def test_racks_split_nodes_round_robin_each_rack_its_own_subnet_and_router_port():
    s = make_spec("rk", 4, dual_stack=True, encap="crosssubnet", racks=2)
    assert [(n.name, n.rack, n.ip4, n.ip6) for n in s.nodes] == [
        ("n1", 0, "198.18.0.11", "fd00:198:18::11"), ("n2", 1, "198.18.1.12", "fd00:198:18:1::12"),
        ("n3", 0, "198.18.0.13", "fd00:198:18::13"), ("n4", 1, "198.18.1.14", "fd00:198:18:1::14")]
    assert s.underlays4 == ["198.18.0.0/24", "198.18.1.0/24"]
    assert (s.rack_router4(1), s.rack_router6(1)) == ("198.18.1.1", "fd00:198:18:1::1")
    assert [s.router_port(r) for r in range(2)] == [("eth0", "rt"), ("eth2", "rt1")]
    assert spec_from_dict(spec_to_dict(s)) == s
    assert make_spec("one", 3).racks == 1 and spec_from_dict({"name": "old", "nodes": 2}).racks == 1
    # a node added later lands where its index puts it
    assert s.with_node("n6").node("n6") == NodeSpec("n6", "pn-rk-n6", "198.18.1.16", "fd00:198:18:1::16", "n6",
                                                     rack=1)


@pytest.mark.parametrize("args,msg", [
    ({"racks": 2}, "--encap none: pod blocks in another rack"),  # Never across racks, no BGP
    ({"racks": 0}, "--racks 0"), ({"racks": 9, "encap": "vxlan"}, "--racks 9"),
])
def test_racks_that_cannot_route_are_refused(args, msg):
    with pytest.raises(TopologyError, match=msg):
        make_spec("rk", 4, **args)
    make_spec("rk", 4, racks=2, routing="bgp")  # BGP carries the blocks across racks
