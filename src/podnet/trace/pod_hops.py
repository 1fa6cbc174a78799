"""The pod's end of a walk (trace/walk.py): the packet as it goes, what conntrack
remembers of a request for its reply, a pod sending and receiving, and the policy step
that says which side's rules decided. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.api.objects import Pod
from podnet.calc.policy.predicate import SideVerdict, Verdict
from podnet.dataplane.net.podwire import HOST_MAC, pod_mac
from podnet.trace import routing as rt
from podnet.trace.model import L2, L3, L4, Headers, Hop, Step

TTL = 64


@dataclass
class Pkt:
    family: int
    src: str
    dst: str
    sport: int | None
    dport: int | None
    proto: str
    ttl: int = TTL

    def l3(self) -> L3:
        return L3(self.family, self.src, self.dst, self.ttl)

    def l4(self) -> L4:
        return L4(self.proto, self.sport, self.dport)


@dataclass
class Conn:
    """What conntrack remembers of the request, for the reply."""
    client: Pod
    dnat_node: str = ""
    vip: tuple[str, int] | None = None  # the original destination (a VIP, or node IP:nodePort)
    snats: list[tuple[str, str, str]] = field(default_factory=list)  # (node, to, from)
    verdict: Verdict | None = None
    policy_drop: str = ""


def pod_label(p: Pod) -> str:
    return f"{p.namespace}/{p.name}"


def pod_netns(p: Pod) -> str:
    return p.annotations.get(NETNS_ANNOTATION) or f"<netns of {pod_label(p)}>"


# ---- policy ----------------------------------------------------------------------------
def policy_step(side: SideVerdict, pod: str) -> Step:
    chain = "egress" if side.direction == "egress" else "ingress"
    data = {"direction": side.direction, "pod": pod, "isolated": side.isolated, "allowed": side.allowed,
            "rule": side.rule.name if side.rule else side.cluster_rule.name if side.cluster_rule else None,
            "policies": list(side.policies)}
    if side.cluster_rule is not None or side.passed:  # ClusterNetworkPolicy tiers took part
        data["tier"] = side.tier or "default"
        data["clusterRules"] = [{"tier": cr.tier, "policy": cr.policy, "index": cr.index, "name": cr.rule_name,
                                 "action": cr.action} for cr in (*side.passed, *([side.cluster_rule] if side.cluster_rule else []))]
    if not side.isolated:
        text = f"{side.direction} of {pod}: {side.reason}: accept"
    elif side.allowed:
        text = f"{side.direction} of {pod}: {side.reason}: accept"
    else:
        text = f"{side.direction} of {pod}: DROP: {side.reason}"
    return Step("policy", f"policy (inet podnet-pol, chain {chain}): {text}", data)


# ---- hops ------------------------------------------------------------------------------
def pod_send(pod: Pod, pkt: Pkt, dst_l2: str = HOST_MAC) -> Hop:
    d = rt.pod_decision(pkt.family)
    steps = (Step("route", f"routes: {' | '.join(rt.pod_routes(pkt.family))}"),
             Step("route", f"route chosen for {pkt.dst}: {d.route}",
                  d.data(pkt.src, pkt.dst)),
             Step("route", f"{d.gateway} is {HOST_MAC}, the node's end of the veth "
                           + ("(proxy ARP; the CNI plugin also wrote a permanent neighbour entry)"
                              if pkt.family == 4 else "(its link-local address; a permanent neighbour entry)")))
    h = Headers(L2(pod_mac(pod.uid, rt.POD_IFNAME), dst_l2), pkt.l3(), pkt.l4())
    return Hop(f"pod {pod_label(pod)} (on node {pod.node_name})", "pod", pod_label(pod), pod_netns(pod),
               None, rt.POD_IFNAME, steps, h)


def pod_deliver(pod: Pod, pkt: Pkt, iif_hop_mac: str, reply: bool) -> tuple[Hop, str]:
    listens = [p for p in pod.ports if p.container_port == pkt.dport and p.protocol == pkt.proto]
    if reply:
        what = f"the reply reaches {pod_label(pod)}'s socket (conntrack: established)"
    elif listens:
        name = f" ({listens[0].name})" if listens[0].name else ""
        what = f"delivered to {pod_label(pod)} eth0, port {pkt.dport}/{pkt.proto}{name}"
    else:
        what = (f"delivered to {pod_label(pod)} eth0, port {pkt.dport}/{pkt.proto} "
                f"(no containerPort declares it; answered only if something listens)")
    h = Headers(L2(iif_hop_mac, pod_mac(pod.uid, rt.POD_IFNAME)), pkt.l3(), pkt.l4())
    return Hop(f"pod {pod_label(pod)} (on node {pod.node_name})", "pod", pod_label(pod), pod_netns(pod),
               rt.POD_IFNAME, None, (Step("deliver", what, {"pod": pod_label(pod), "port": pkt.dport}),), h), what
