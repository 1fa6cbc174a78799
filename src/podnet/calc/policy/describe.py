"""For `podnet describe pod`: which policies isolate a pod and what they allow, and which
ClusterNetworkPolicies select it (`describe_cluster`), as text. Pure.

    Ingress: isolated by x/deny, x/from-y
      x/deny: allows nothing
      x/from-y rule 0: from pods in namespaces ns=y; ports TCP/80, TCP/serve-81-tcp (81)
    Egress: not isolated (everything allowed)
"""
from __future__ import annotations

from podnet.api.objects import ClusterNetworkPolicy, ClusterRule, Pod, PolicyPeer, PolicyPort, PolicyRule
from podnet.calc.model import ClusterState
from podnet.calc.policy.predicate import EGRESS, INGRESS, isolating_policies
from podnet.calc.policy.tiers import cluster_policies_for_pod, rules_in


def _peer(p: PolicyPeer) -> str:
    if p.ip_block is not None:
        ex = f" except {', '.join(p.ip_block.except_)}" if p.ip_block.except_ else ""
        return f"{p.ip_block.cidr}{ex}"
    pods = "pods" if p.pod_selector is None or p.pod_selector.is_everything else f"pods {p.pod_selector}"
    if p.namespace_selector is None:
        return f"{pods} of this namespace"
    ns = "every namespace" if p.namespace_selector.is_everything else f"namespaces {p.namespace_selector}"
    return f"{pods} in {ns}"


def _port(pp: PolicyPort, pod: Pod | None) -> str:
    if pp.port is None:
        return f"{pp.protocol}/all"
    if isinstance(pp.port, int):
        return f"{pp.protocol}/{pp.port}" + (f"-{pp.end_port}" if pp.end_port is not None else "")
    n = pod.named_port(pp.port, pp.protocol) if pod is not None else None
    return f"{pp.protocol}/{pp.port}" + (f" ({n})" if n is not None else " (not on this pod)" if pod else "")


def _rule(r: PolicyRule, direction: str, pod: Pod) -> str:
    word = "from" if direction == INGRESS else "to"
    peers = "anywhere" if r.peers is None else "; ".join(_peer(p) for p in r.peers)
    ports = "all ports" if r.ports is None else "ports " + ", ".join(
        _port(pp, pod if direction == INGRESS else None) for pp in r.ports)
    return f"{word} {peers}; {ports}"


def describe_pod(state: ClusterState, pod: Pod) -> list[str]:
    lines: list[str] = []
    for direction in (INGRESS, EGRESS):
        title = direction.capitalize()
        pols = isolating_policies(state, pod, direction)
        if not pols:
            lines.append(f"{title}: not isolated (everything allowed)")
            continue
        lines.append(f"{title}: isolated by {', '.join(f'{p.namespace}/{p.name}' for p in pols)}")
        for np in pols:
            rules = np.ingress if direction == INGRESS else np.egress
            if not rules:
                lines.append(f"  {np.namespace}/{np.name}: allows nothing")
            for i, r in enumerate(rules):
                lines.append(f"  {np.namespace}/{np.name} rule {i}: {_rule(r, direction, pod)}")
    return lines


def _cluster_rule(cr: ClusterRule, direction: str, pod: Pod | None) -> str:
    word = "from" if direction == INGRESS else "to"
    peers = [_peer(p) for p in cr.rule.peers or ()]
    peers += [f"nodes {s}" if not s.is_everything else "every node" for s in cr.nodes]
    ports: list[str] = []
    for pp in cr.rule.ports or ():
        if not isinstance(pp.port, str):
            ports.append(_port(pp, None))
        elif not any(x.startswith(f"named port {pp.port}") for x in ports):
            # one name stands for each protocol: resolved here on the pod (ingress) only
            n = next(((c.protocol, c.container_port) for c in (pod.ports if pod else ()) if c.name == pp.port), None)
            ports.append(f"named port {pp.port}" + (("" if n is None else f" ({n[0]}/{n[1]})")
                                                    if direction == INGRESS and pod else ""))
    return f"{cr.action} {word} {'; '.join(peers)}; " + ("all ports" if cr.rule.ports is None
                                                         else "ports " + ", ".join(ports))


def describe_cluster(state: ClusterState, pod: Pod) -> list[str]:
    """The ClusterNetworkPolicies whose subject selects the pod, in evaluation order
    (Admin, then Baseline; priority; name), with their rules."""
    pols = cluster_policies_for_pod(state, pod)
    if not pols:
        return ["none selects this pod"]
    lines: list[str] = []
    for c in pols:
        lines.append(f"{c.tier} tier, priority {c.priority}: {c.name}")
        for direction in (INGRESS, EGRESS):
            for i, cr in enumerate(rules_in(c, direction)):
                named = f" ({cr.name})" if cr.name else ""
                lines.append(f"  {direction} rule {i}{named}: {_cluster_rule(cr, direction, pod)}")
    return lines


def describe_cluster_policy(c: ClusterNetworkPolicy) -> list[str]:
    """For `podnet describe clusternetworkpolicy`: tier, priority, subject and rules."""
    ns_sel, pod_sel = c.subject
    subject = (f"pods {pod_sel} in namespaces {ns_sel}" if not pod_sel.is_everything
               else f"every pod in namespaces {ns_sel}" if not ns_sel.is_everything else "every pod")
    lines = [f"Tier:       {c.tier}", f"Priority:   {c.priority}", f"Subject:    {subject}"]
    for direction in (INGRESS, EGRESS):
        rules = rules_in(c, direction)
        lines.append(f"{direction.capitalize()}:" + ("" if rules else " no rules (does not affect it)"))
        for i, cr in enumerate(rules):
            named = f" ({cr.name})" if cr.name else ""
            lines.append(f"  rule {i}{named}: {_cluster_rule(cr, direction, None)}")
    return lines
