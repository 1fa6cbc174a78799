"""Which policy chains a batch of changes can affect: the partial-sync planner. Pure.

A chain's content (calc/policy_compile.PolicyChain) depends on its policy, on the pods its
selector peers match, on namespace labels (namespaceSelector peers) and, through named
ports, on pods' container ports. Pods' memberships (which chains isolate them) are always
recomputed whole, so they need no planning.
"""
from __future__ import annotations

from typing import Mapping

from podnet.api.objects import ObjectKey, Pod, Resource
from podnet.calc.model import ClusterState
from podnet.calc.policy import EGRESS, INGRESS, has_type, peer_selects_pod


def affected_chains(state: ClusterState, changed: set[ObjectKey],
                    previous: Mapping[ObjectKey, Resource]) -> set[str]:
    """Chain ids (`ns/name/direction`) to recompile. `previous` holds the objects as they
    were at the last sync (to see the pod a change moved out of a selector)."""
    out: set[str] = set()
    pods: list[Pod] = []
    ns_changed = False
    for k in changed:
        if k.kind == "NetworkPolicy":
            out |= {f"{k.namespace}/{k.name}/{d}" for d in (INGRESS, EGRESS)}
        elif k.kind == "Pod":
            for o in (state.get("Pod", k.namespace, k.name), previous.get(k)):
                if isinstance(o, Pod):
                    pods.append(o)
        elif k.kind == "Namespace":
            ns_changed = True
    if not pods and not ns_changed:
        return out
    for np in state.policies:
        for direction in (INGRESS, EGRESS):
            if not has_type(np, direction):
                continue
            cid = f"{np.namespace}/{np.name}/{direction}"
            for r in (np.ingress if direction == INGRESS else np.egress):
                if pods and any(isinstance(pp.port, str) for pp in r.ports or ()):
                    out.add(cid)
                    break
                if r.peers is None:
                    continue
                if ns_changed and any(pe.namespace_selector is not None for pe in r.peers):
                    out.add(cid)
                    break
                if any(pe.ip_block is None and peer_selects_pod(state, np, pe, p)
                       for pe in r.peers for p in pods):
                    out.add(cid)
                    break
    return out
