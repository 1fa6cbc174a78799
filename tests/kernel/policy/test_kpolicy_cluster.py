"""Real packets through ClusterNetworkPolicy tiers: for every case of tests/golden/policy/
cluster_cases.yaml the probe table from real connections equals calc's prediction equals
the expected table (the unit tests add analyze, the compiled form and the tracer); then a
hypothesis differential test of random mixes of cluster and v1 policies (real ==
predicted), each reached from the last by a partial sync as the agent does."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topo
from podnet.calc.policy.table import pod_label
from podnet.agent.policy_role import PolicyRole
from cluster_fixtures import CASES, node_2
from cluster_strategies import apply_change, cluster_changes, mixes

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


def _kernel_table(node) -> dict:
    """`inet podnet-pol` as the kernel holds it (stateless JSON: no counter values), made
    comparable: no handles, set elements sorted, rules in their order per chain."""
    got = json.loads(topo.nsx(node.topo.node, "nft", "-j", "-s", "list", "table", "inet", "podnet-pol").stdout)
    objs: dict[str, list] = {"chain": [], "set": [], "map": [], "counter": []}
    rules: dict[str, list] = {}
    for item in got["nftables"]:
        (kind, body), = item.items()
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "rule":
            rules.setdefault(body["chain"], []).append(json.dumps(body["expr"], sort_keys=True))
        elif kind in objs:
            if "elem" in body:
                body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
            objs[kind].append(json.dumps(body, sort_keys=True))
    return {"rules": rules, **{k: sorted(v) for k, v in objs.items()}}


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(mix=mixes(), chs=st.lists(cluster_changes(same_pods=True), min_size=4, max_size=10))
def test_data_plane_after_partial_syncs_equals_a_full_render(cnode, mix, chs):
    """Random changes (cluster and v1 policies, pod and namespace relabels, named ports,
    Nodes), each loaded by a partial sync as the agent does: what the kernel then holds
    equals what the full render of the final state loads."""
    cnps, v1 = mix
    kept = {kind: list(cnode.state.of_kind(kind)) for kind in ("Pod", "Namespace")}
    try:
        _set(cnode, cnps + v1 + [node_2()])
        for ch in chs:
            assert "delete table" not in cnode.sync(apply_change(cnode.state, ch))
        incremental = _kernel_table(cnode)
        cnode.nft.apply(PolicyRole("node-1").nft_fragment(cnode.state, None))  # re-creates the table
        assert _kernel_table(cnode) == incremental
    finally:
        for kind, objs in kept.items():
            cnode.state.objects[kind] = {(o.namespace, o.name): o for o in objs}
        _set(cnode, [])
        cnode.sync(None)
