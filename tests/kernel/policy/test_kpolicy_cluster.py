"""Real packets through ClusterNetworkPolicy tiers: for every case of tests/golden/policy/
cluster_cases.yaml the probe table from real connections equals calc's prediction equals
the expected table (the unit tests add analyze, the compiled form and the tracer); then a
hypothesis differential test of random mixes of cluster and v1 policies (real ==
predicted), each reached from the last by a partial sync as the agent does."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topo
from podnet.calc.policy.table import pod_label
from cluster_fixtures import CASES
from cluster_strategies import mixes

pytestmark = pytest.mark.root
NODE_PORT = 53  # a port pods may open on another node (calc/host.py), so `nodes` peers show


@pytest.fixture(scope="module")
def cnode(node):
    """The policy node with a listener on port 53 in every pod and in the outside world
    (which a case's Node `node-2` stands for)."""
    procs = []
    try:
        for ns in [node.topo.pod_netns(pod_label(p)) for p in node.state.pods] + [node.topo.outside]:
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(topo.SERVER), str(NODE_PORT)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == b"ready", ns
        yield node
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
        node.set_objects("ClusterNetworkPolicy", [])
        node.set_objects("NetworkPolicy", [])
        node.set_objects("Node", [])


def _set(node, objs) -> str:
    """NetworkPolicies, ClusterNetworkPolicies and Nodes: each kind becomes exactly `objs`' own."""
    return "".join(node.set_objects(kind, [o for o in objs if o.kind == kind])
                   for kind in ("Node", "NetworkPolicy", "ClusterNetworkPolicy"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_real_equals_predicted_equals_expected(cnode, name):
    untestable = []
    for i, step in enumerate(CASES[name]):
        _set(cnode, step.policies)
        for pr in step.probes:
            real, predicted, results = cnode.tables(pr.port, pr.protocol, pr.family, pr.targets_extra)
            where = f"{name} step {i} {pr.protocol}/{pr.port} IPv{pr.family}"
            assert predicted.diff(pr.expected) == [], f"{where}: predicted\n{predicted.text()}"
            if all(r.outcome == "untestable" for r in results):
                untestable.append(where)
                continue
            assert real.diff(predicted) == [], f"{where}: real\n{real.text()}"
            assert all(real.get(r, c) is not None for r in real.rows for c in real.cols), real.text()
    _set(cnode, [])
    if untestable:
        pytest.skip(f"kernel without SCTP (socket: Protocol not supported): {', '.join(untestable)}")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(mix=mixes(), port=st.sampled_from([80, 81]), protocol=st.sampled_from(["TCP", "UDP"]),
       family=st.sampled_from([4, 6]))
def test_random_mixes_real_equals_predicted(cnode, mix, port, protocol, family):
    cnps, v1 = mix
    script = _set(cnode, cnps + v1)
    assert "delete table" not in script  # a partial sync, as the agent makes it
    extra = ["fd00:203:113::10" if family == 6 else "203.0.113.10"]
    real, predicted, _ = cnode.tables(port, protocol, family, extra)
    assert real.diff(predicted) == [], (f"{[p.raw for p in cnps + v1]}\nreal\n{real.text()}\n"
                                        f"predicted\n{predicted.text()}")


def test_staged_policy_is_not_enforced_until_promoted(cnode):
    """A staged Admin Deny changes no real verdict; the same policy promoted (its annotation
    gone, a partial sync) denies exactly what the case's table says."""
    step = CASES["admin-deny-ingress-from-namespace"][0]
    staged = [p.with_metadata(annotations={"podnet.io/staged": "true"}) for p in step.policies]
    _set(cnode, staged)
    real, predicted, _ = cnode.tables(80, "TCP", 4)
    assert real.diff(predicted) == [] and all(predicted.get(r, c) for r in real.rows for c in real.cols)
    assert "delete table" not in _set(cnode, step.policies)
    real, predicted, _ = cnode.tables(80, "TCP", 4)
    assert predicted.diff(step.probes[0].expected) == [] and real.diff(predicted) == [], real.text()
    _set(cnode, [])
