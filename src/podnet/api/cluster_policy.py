"""ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2): typed views of its tier,
priority, subject and rules. Pure.

The API is SIG Network's (kubernetes-sigs/network-policy-api, apis/v1alpha2). Each rule is
read as an action plus a v1-shaped `PolicyRule` (api/policy.py), so calc matches peers and
ports with the same code for both kinds:
- a `namespaces` peer is a v1 peer with that namespaceSelector and no podSelector; a
  `pods` peer is namespaceSelector AND podSelector (a missing namespaceSelector: every
  namespace); `networks` are ipBlocks without excepts; `nodes` stay a selector over Node
  labels (`ClusterRule.nodes`), resolved to node addresses in calc;
- `protocols` absent: every protocol and port (`ports is None`); `tcp`/`udp`/`sctp` with a
  `destinationPort` number or range; `destinationNamedPort` names a container port
  whatever its protocol, so it stands for that name under each protocol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from podnet.api.meta import PROTOCOLS, Resource
from podnet.api.policy import IPBlock, PolicyPeer, PolicyPort, PolicyRule
from podnet.api.selector import LabelSelector

GROUP_VERSION = "policy.networking.k8s.io/v1alpha2"
ADMIN = "Admin"
BASELINE = "Baseline"
TIERS = (ADMIN, BASELINE)
ACCEPT, DENY, PASS = "Accept", "Deny", "Pass"
ACTIONS = (ACCEPT, DENY, PASS)


@dataclass(frozen=True)
class ClusterRule:
    """One rule: its action, its name (may be ""), the v1-shaped match and, for egress,
    the node selectors among its peers."""
    action: str
    name: str
    rule: PolicyRule
    nodes: tuple[LabelSelector, ...] = ()


def _sel(v: Any) -> LabelSelector:
    return LabelSelector.from_dict(v or {})


def _peer(p: Mapping[str, Any]) -> list[PolicyPeer]:
    if p.get("namespaces") is not None:
        return [PolicyPeer(None, _sel(p["namespaces"]))]
    if p.get("pods") is not None:
        pods = p["pods"] or {}
        return [PolicyPeer(_sel(pods.get("podSelector")), _sel(pods.get("namespaceSelector")))]
    return [PolicyPeer(None, None, IPBlock(str(c))) for c in p.get("networks") or ()]


def _ports(items: Any) -> tuple[PolicyPort, ...] | None:
    if not items:
        return None
    out: list[PolicyPort] = []
    for pr in items:
        pr = pr or {}
        if pr.get("destinationNamedPort"):
            out.extend(PolicyPort(proto, str(pr["destinationNamedPort"])) for proto in PROTOCOLS)
            continue
        for proto in PROTOCOLS:
            body = pr.get(proto.lower())
            if body is None:
                continue
            dp = (body or {}).get("destinationPort")
            if not dp:
                out.append(PolicyPort(proto, None))
            elif dp.get("range"):
                out.append(PolicyPort(proto, int(dp["range"]["start"]), int(dp["range"]["end"])))
            else:
                out.append(PolicyPort(proto, int(dp["number"])))
    return tuple(out)


def _rules(items: Any, peer_key: str) -> tuple[ClusterRule, ...]:
    out = []
    for r in items or []:
        r = r or {}
        peers: list[PolicyPeer] = []
        nodes: list[LabelSelector] = []
        for p in r.get(peer_key) or ():
            p = p or {}
            if p.get("nodes") is not None:
                nodes.append(_sel(p["nodes"]))
            peers.extend(_peer(p))
        out.append(ClusterRule(str(r.get("action", "")), str(r.get("name") or ""),
                               PolicyRule(tuple(peers), _ports(r.get("protocols"))), tuple(nodes)))
    return tuple(out)


class ClusterNetworkPolicy(Resource):
    kind_name = "ClusterNetworkPolicy"

    @property
    def tier(self) -> str:
        return str(self.spec.get("tier", ""))

    @property
    def priority(self) -> int:
        return int(self.spec.get("priority", 0))

    @property
    def subject(self) -> tuple[LabelSelector, LabelSelector]:
        """(namespace selector, pod selector) of the pods the policy applies to."""
        s = self.spec.get("subject") or {}
        if s.get("pods") is not None:
            pods = s["pods"] or {}
            return _sel(pods.get("namespaceSelector")), _sel(pods.get("podSelector"))
        if s.get("namespaces") is not None:
            return _sel(s["namespaces"]), LabelSelector.everything()
        return LabelSelector.nothing(), LabelSelector.nothing()

    @property
    def ingress(self) -> tuple[ClusterRule, ...]:
        return _rules(self.spec.get("ingress"), "from")

    @property
    def egress(self) -> tuple[ClusterRule, ...]:
        return _rules(self.spec.get("egress"), "to")
