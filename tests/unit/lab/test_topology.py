"""lab/topology.py: derived names and the address plan. Pure, no root."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from podnet.lab.topology import (MAX_NODES, TopologyError, make_spec, spec_from_dict,
                                 spec_to_dict, validate_name)


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
