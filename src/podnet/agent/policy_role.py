"""The node agent's policy role (NetworkPolicy and ClusterNetworkPolicy -> `inet podnet-pol`),
implementing agent/role.Role. The same table protects the node from its pods (calc/host.py: what pods
may send to a node's own addresses, from the IP pools and the Nodes' addresses).

It keeps what it last committed in memory and answers a sync with the difference only: it
recompiles just the chains a change can affect (calc/policy/sync), reuses the rest, renders
only recompiled chains and emits the diff; a failed transaction (`committed(False)`) makes
the next sync full. Bad objects are skipped, never raised.
"""
from __future__ import annotations

import logging

from podnet.api.objects import ObjectKey, Pod, Resource
from podnet.calc.host import host_protection
from podnet.calc.model import ClusterState
from podnet.calc.policy.compile import CompiledPolicies, compile_policies
from podnet.calc.policy.index import pod_index
from podnet.calc.policy.cluster_sync import plan_cluster
from podnet.calc.policy.sync import affected_chains, dirty_namespaces
from podnet.dataplane.nft import policy as pol_nft

log = logging.getLogger(__name__)


class PolicyRole:
    name = "policy"
    kinds = ("Pod", "Namespace", "NetworkPolicy", "ClusterNetworkPolicy", "Node", "IPPool")

    def __init__(self, node_name: str = ""):
        self.node_name = node_name  # "" renders every pod (single-node uses, tests)
        self._model: pol_nft.NftModel | None = None
        self._compiled: CompiledPolicies | None = None
        self._cache = pol_nft.RenderCache()
        self._pods: dict[ObjectKey, Resource] = {}
        self._pending: tuple[pol_nft.NftModel, CompiledPolicies, dict[ObjectKey, Resource]] | None = None
        self._logged: set[str] = set()  # skipped objects already reported

    def _local(self, pod: Pod) -> bool:
        return not self.node_name or pod.node_name == self.node_name

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        try:
            full = changed is None or self._model is None or self._compiled is None
            if full or self._compiled is None or changed is None:
                compiled = compile_policies(state, self._local)
            else:
                compiled = compile_policies(state, self._local, only=affected_chains(state, changed, self._pods),
                                            reuse=self._compiled.chains, prev=self._compiled,
                                            dirty_ns=dirty_namespaces(changed),
                                            index=pod_index(state, self._compiled.index, changed),
                                            cluster_plan=plan_cluster(state, changed, self._pods))
            for err in set(compiled.errors) - self._logged:
                log.warning("policy: skipped %s", err)
            self._logged = set(compiled.errors)
            if full:
                self._cache.clear()
            model = pol_nft.render(compiled, self._cache, host_protection(state))
        except Exception:  # a bad object must not stop the agent: skip this sync, go full next
            log.exception("policy: render failed; next sync is full")
            self._model = None
            return ""
        self._pending = (model, compiled, self._snapshot(state, None if full else changed))
        if full or self._model is None:
            return pol_nft.full_script(model)
        return pol_nft.diff_script(self._model, model)

    def _snapshot(self, state: ClusterState, changed: set[ObjectKey] | None) -> dict[ObjectKey, Resource]:
        """Pods and Namespaces as of this sync (the planner's `previous` next time); a partial
        sync copies the last one and replaces only what changed."""
        if changed is None:
            pods: dict[ObjectKey, Resource] = {p.key: p for p in state.pods}
            pods.update((n.key, n) for n in state.namespaces)
            return pods
        pods = dict(self._pods)
        for k in changed:
            if k.kind in ("Pod", "Namespace"):
                o = state.get(k.kind, k.namespace, k.name)
                if o is None:
                    pods.pop(k, None)
                else:
                    pods[k] = o
        return pods

    def committed(self, ok: bool) -> None:
        if ok and self._pending is not None:
            self._model, self._compiled, self._pods = self._pending
        else:
            self._model, self._compiled, self._pods = None, None, {}
            self._cache.clear()
        self._pending = None

    def flow_rules(self) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, str, str, tuple[str, ...]]]]:
        """What the committed rules' nflog ids stand for (dataplane/nft/flowlog.py):
        (namespace, policy, direction, rule index) of every allowing rule, and (namespace,
        pod, direction, isolating policies) of every pod chain (issue 18 §1)."""
        c = self._compiled
        if c is None:
            return [], []
        rules = [(r.ref.namespace, r.ref.policy, r.ref.direction, r.ref.index)
                 for ch in c.chains.values() for r in ch.rules]
        pods = []
        for key, pp in c.pods.items():
            for direction, cids in (("ingress", pp.ingress), ("egress", pp.egress)):
                if cids is not None:
                    pods.append((key.namespace, key.name, direction, tuple(cid.rsplit("/", 2)[1] for cid in cids)))
        return rules, pods

    def flow_cluster_rules(self) -> list[tuple[str, str, str, int, str]]:
        """(tier, policy, direction, rule index, action) of every committed cluster rule that
        logs (Accept and Deny; dataplane/nft/cluster_policy.py)."""
        c = self._compiled
        if c is None:
            return []
        return [(ch.tier, ch.policy, ch.direction, i, action) for ch in c.cluster.values()
                for i, (action, _) in enumerate(ch.rules) if action in ("Accept", "Deny")]

    def apply_kernel(self, state: ClusterState) -> None:
        return None
