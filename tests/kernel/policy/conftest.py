"""Shared fixture of the policy kernel tests: one topology per module (see topo.py),
the policy and NAT roles applied in the node netns, torn down also on failure."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from needs import missing
from netnames import unique_netns

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "policy"))

import topo  # noqa: E402

from podnet.agent.nat_role import NatRole  # noqa: E402
from podnet.agent.policy_role import PolicyRole  # noqa: E402
from podnet.api.objects import ObjectKey, Resource  # noqa: E402
from topo import pool  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.calc.policy.table import e2e_model, pod_label, predict  # noqa: E402
from podnet.cli.policy_probe import probe  # noqa: E402
from podnet.dataplane.nft.runner import NftRunner  # noqa: E402

PREFIX = unique_netns("pol")  # one per run: <PREFIX>-node, -out, -<ns>-<pod>


def _need_root() -> None:
    if os.geteuid() != 0:
        missing("needs root")
    if shutil.which("ip") is None:
        missing("needs ip netns (iproute2)")


class Node:
    """The node under test: its ClusterState and roles, synced the way the agent does."""

    def __init__(self, t: topo.Topology, objs: list[Resource]):
        self.topo = t
        self.state = ClusterState.from_objects(objs, node_name="node-1")
        self.policy = PolicyRole("node-1")
        self.nat = NatRole()
        self.nft = NftRunner(t.node)
        self.sync(None)

    def sync(self, changed: set[ObjectKey] | None) -> str:
        script = "".join(r.nft_fragment(self.state, changed) for r in (self.policy, self.nat))
        try:
            self.nft.apply(script)
        except Exception:
            for r in (self.policy, self.nat):
                r.committed(False)
            raise
        for r in (self.policy, self.nat):
            r.committed(True)
        return script

    def set_objects(self, kind: str, objs: list[Resource]) -> str:
        """Make `objs` the whole set of `kind` in the state; sync the difference."""
        changed = {o.key for o in self.state.of_kind(kind)} | {o.key for o in objs}
        self.state.objects[kind] = {}
        for o in objs:
            self.state.put(o)
        return self.sync(changed)

    def tables(self, port: int, protocol: str, family: int, extra: tuple[str, ...] | list[str] = ()):
        """(real, predicted, per-cell results): every pod probes every pod (and `extra`
        addresses) with real connections, and calc predicts the same table."""
        pods = sorted(self.state.pods, key=lambda p: (p.namespace, p.name))
        fam = lambda ips: next(a for a in ips if (":" in a) == (family == 6))  # noqa: E731
        sources = [(pod_label(p), self.topo.pod_netns(pod_label(p))) for p in pods]
        targets = [(pod_label(p), fam(p.pod_ips)) for p in pods] + [(a, a) for a in extra]
        real, results = probe(sources, targets, port, protocol)
        predicted = predict(self.state, port, protocol, family, targets=pods + list(extra))
        return real, predicted, results


@pytest.fixture(scope="module")
def node():
    _need_root()
    pods = [o for o in e2e_model() if o.kind == "Pod"]
    t, annotated = topo.build(PREFIX, pods)
    try:
        others = [o for o in e2e_model() if o.kind != "Pod"]
        yield Node(t, others + annotated + [pool("v4", "10.244.0.0/16", True),
                                            pool("v6", "fd00:10:244::/56", True)])
    finally:
        t.destroy()
