"""Walk one direction of one connection hop by hop, as the kernel of each namespace
would take it: the pod's route, the node's prerouting (service DNAT, conntrack's
un-SNAT), route lookup, the forward-hook policy chains, postrouting (NAT outgoing,
hairpin, conntrack's un-DNAT), VXLAN encapsulation; the underlay bridge; the router and
the outside world. Pure. `path.predict` drives it for the request and the reply.
"""
from __future__ import annotations

from podnet.api.objects import Pod
from podnet.calc.host import host_protection
from podnet.calc.model import ClusterState
from podnet.calc.nat import nat_plan
from podnet.calc.policy.predicate import allowed, pod_by_ip
from podnet.calc.routes import VXLAN_PORT, VXLAN_VNI
from podnet.calc.service_paths import Path as SvcPath
from podnet.calc.services import ServicePortEntry
from podnet.dataplane.net.podwire import HOST_MAC, pod_mac
from podnet.trace import routing as rt
from podnet.trace.facts import LabFacts
from podnet.trace.model import L2, L3, L4, Endpoint, Headers, Hop, Path, Step
from podnet.trace.pod_hops import TTL, Conn, Pkt, pod_deliver, pod_label, policy_step

MAX_HOPS = 16


def _node_netns(facts: LabFacts, node: str) -> str:
    n = facts.node(node)
    return n.netns if n else f"<netns of node {node}>"


def _eth(facts: LabFacts, node: str) -> str:
    return facts.mac(_node_netns(facts, node), rt.UNDERLAY_DEV, f"node {node}")


# ---- the walk --------------------------------------------------------------------------
Loc = tuple[str, str, str, bool]  # (kind, name, iif, encapsulated)


class Walker:
    """Walks one direction of one connection; `conn` carries conntrack's memory across."""

    def __init__(self, state: ClusterState, facts: LabFacts, conn: Conn,
                 entry: ServicePortEntry | None, chosen: Endpoint | None, direction: str,
                 ext_path: SvcPath | None = None, external_ip: bool = False):
        self.state, self.facts, self.conn = state, facts, conn
        self.entry, self.chosen, self.direction = entry, chosen, direction
        # the entry is reached by an external destination: a node IP and its nodePort, or
        # (external_ip) one of its spec.externalIPs and the service port
        self.ext_path = ext_path
        self.external_ip = external_ip
        self.node_port = ext_path is not None and not external_ip
        self.nat = nat_plan(state)
        self.host = host_protection(state)
        self.hops: list[Hop] = []
        self.then: list[Loc] = []  # where the packet goes after the underlay
        self.segment = facts.segments[0]  # the rack whose bridge the frame crosses next
        self.outer: Headers | None = None  # the VXLAN outer headers while wrapped

    @property
    def reply(self) -> bool:
        return self.direction == "reply"

    def run(self, first: Hop, loc: Loc | None, pkt: Pkt) -> Path:
        self.hops.append(first)
        outcome, why = "delivered", ""
        while loc is not None:
            if len(self.hops) > MAX_HOPS:
                return self._path("dropped", "routing loop: more than 16 hops")
            hop, loc, outcome, why = getattr(self, "_" + loc[0])(loc, pkt)
            self.hops.append(hop)
        return self._path(outcome, why)

    def _path(self, outcome: str, why: str) -> Path:
        return Path(self.direction, tuple(self.hops), outcome, why)

    def _last_l2(self) -> L2:
        h = self.hops[-1].headers
        return h.l2 if h else L2("?", "?")

    # -- a node ----------------------------------------------------------------------------
    def _node(self, loc: Loc, pkt: Pkt) -> tuple[Hop, Loc | None, str, str]:
        _, name, iif, encap = loc
        steps: list[Step] = []
        if encap:
            steps.append(Step("decap", f"UDP/{VXLAN_PORT} on {rt.UNDERLAY_DEV} is VXLAN VNI {VXLAN_VNI}: "
                                       f"decapsulated, the inner packet enters on {iif}",
                              {"vni": VXLAN_VNI, "dev": iif}))
        done = self._prerouting(name, pkt, steps)
        if done is not None:
            return self._hop(name, iif, None, steps, None), None, done[0], done[1]
        d = rt.node_decision(self.state, self.facts, name, pkt.dst)
        steps.append(Step("route", f"route lookup for {pkt.dst}: {d.route}",
                          d.data(pkt.src, pkt.dst)))
        if d.to == "local":
            refused = self._host_input(name, pkt, steps)
            if refused:
                return self._hop(name, iif, None, steps, None), None, "rejected", refused
            steps.append(Step("deliver", f"{pkt.dst} is node {name}'s own address: delivered to the node"))
            return self._hop(name, iif, None, steps, None), None, "delivered", f"to node {name}"
        drop = self._filter(name, d, pkt, steps)
        if drop:  # NetworkPolicy drops, host protection rejects
            outcome = "rejected" if steps[-1].kind == "reject" else "dropped"
            return self._hop(name, iif, d.dev, steps, None), None, outcome, drop
        steps.append(Step("ttl", f"forwarded: TTL {pkt.ttl} -> {pkt.ttl - 1}"))
        pkt.ttl -= 1
        self._postrouting(name, d, pkt, steps)
        headers, nxt = self._leave(name, d, pkt, steps)
        return self._hop(name, iif, d.dev, steps, headers), nxt, "delivered", ""

    def node_origin(self, name: str, pkt: Pkt) -> tuple[Hop, Loc | None]:
        """A packet the node sends itself (its answer to a connection to its own address):
        no prerouting, no forward hook, no TTL decrement."""
        d = rt.node_decision(self.state, self.facts, name, pkt.dst)
        steps = [Step("route", f"route lookup for {pkt.dst}: {d.route}",
                      d.data(pkt.src, pkt.dst))]
        headers, nxt = self._leave(name, d, pkt, steps)
        return self._hop(name, None, d.dev, steps, headers), nxt

    def _hop(self, name: str, iif: str | None, oif: str | None, steps: list[Step], h: Headers | None) -> Hop:
        return Hop(f"node {name}", "node", name, _node_netns(self.facts, name), iif, oif, tuple(steps), h)

    def _prerouting(self, name: str, pkt: Pkt, steps: list[Step]) -> tuple[str, str] | None:
        e = self.entry
        if self.external_ip and e is not None:
            mine = (pkt.dst in e.external_ips or pkt.dst in e.lb_ips) and pkt.dport == e.port
            orig, how = (pkt.dst, e.port), "external IP"
        elif self.node_port and e is not None:
            mine = self.facts.node_ip(name, pkt.family) == pkt.dst and pkt.dport == e.node_port
            orig, how = (pkt.dst, e.node_port), "NodePort"
        else:
            mine = e is not None and (pkt.dst, pkt.dport) == (e.vip, e.port)
            orig, how = ((e.vip, e.port) if e else ("", 0)), "nat prerouting"
        if not self.reply and e is not None and mine and not self.conn.dnat_node:
            svc = f"{e.namespace}/{e.name}"
            cands, local = (self.ext_path.endpoints, e.external_local) if self.ext_path is not None \
                else (e.internal_endpoints, e.internal_local)
            field = "externalTrafficPolicy" if self.ext_path is not None else "internalTrafficPolicy"
            if e.endpoints and not cands and self.ext_path is not None and "SourceRanges" in self.ext_path.why:
                steps.append(Step("drop", f"service proxy (inet podnet-svc, {how}): {svc}: {self.ext_path.why}"))
                return "dropped", f"Service {svc}: {self.ext_path.why}"
            if e.endpoints and not cands:
                steps.append(Step("drop", f"service proxy (inet podnet-svc, {how}): {svc} has {field} Local "
                                          f"and no endpoint on node {name}: DROP"))
                return "dropped", f"Service {svc} has {field} Local and no endpoint on node {name}"
            if not cands or self.chosen is None:
                steps.append(Step("reject", f"service proxy (inet podnet-svc): {svc} port {orig[1]}/{e.protocol} "
                                            f"has no ready endpoint: REJECT"))
                return "rejected", f"Service {svc} has no ready endpoints"
            n = len(cands)
            k = next(i for i, x in enumerate(cands) if x.ip == self.chosen.ip) + 1
            aff = f"; ClientIP affinity {e.affinity_timeout}s" if e.affinity_timeout else ""
            if self.ext_path is not None:
                aff += f"; {self.ext_path.why}" if local else ""
            else:
                aff += f"; {field} Local: node {name}'s endpoints only" if local else ""
            steps.append(Step("dnat", f"service proxy (inet podnet-svc, {how}): DNAT {orig[0]}:{orig[1]} -> "
                                      f"{self.chosen.ip}:{self.chosen.port} (endpoint {k} of {n}, "
                                      f"each drawn with probability 1/{n}{aff})",
                              {"from": f"{orig[0]}:{orig[1]}", "to": f"{self.chosen.ip}:{self.chosen.port}",
                               "candidates": [f"{x.ip}:{x.port}" for x in cands]}))
            self.conn.dnat_node, self.conn.vip = name, orig
            pkt.dst, pkt.dport = self.chosen.ip, self.chosen.port
        for node, to, frm in reversed(self.conn.snats):
            if self.reply and node == name and pkt.dst == to:
                steps.append(Step("unsnat", f"conntrack: reply to the masqueraded connection: destination "
                                            f"{pkt.dst} -> {frm}", {"from": pkt.dst, "to": frm}))
                pkt.dst = frm
        return None

    def _from_pod(self, name: str, pkt: Pkt) -> bool:
        """As the node's input chain tells: from a local pod's veth, or from a pool address."""
        c = self.conn.client
        return (c.node_name == name and pkt.src in c.pod_ips) or self.host.from_pod(pkt.src)

    def _host_step(self, name: str, chain: str, pkt: Pkt, why: str, steps: list[Step]) -> str:
        steps.append(Step("reject", f"host protection (inet podnet-pol, chain {chain}): from a pod to "
                                    f"node address {pkt.dst}: {why}: REJECT",
                          {"chain": chain, "allowed": False, "port": pkt.dport, "proto": pkt.proto}))
        return f"host protection on node {name}: pods may not reach {pkt.dst} port {pkt.dport}/{pkt.proto}"

    def _host_input(self, name: str, pkt: Pkt, steps: list[Step]) -> str:
        if self.reply or not self._from_pod(name, pkt):
            return ""
        why = self.host.refuses(pkt.proto, pkt.dport, dnat=bool(self.conn.dnat_node), to_other_node=False)
        return self._host_step(name, "input", pkt, why, steps) if why else ""

    def _filter(self, name: str, d: rt.Decision, pkt: Pkt, steps: list[Step]) -> str:
        if not self.reply and self.conn.client.node_name == name and \
                pkt.dst in self.host.nodes[pkt.family] and pkt.src in self.conn.client.pod_ips:
            why = self.host.refuses(pkt.proto, pkt.dport, dnat=bool(self.conn.dnat_node), to_other_node=True)
            if why:
                return self._host_step(name, "pod-to-node", pkt, why, steps)
        if self.reply:
            steps.append(Step("policy", "policy (inet podnet-pol): ct state established,related accept "
                                        "(the reply of an allowed connection)",
                              {"direction": "reply", "allowed": True, "rule": None}))
            return ""
        # judged on the packet as the forward hook sees it here: after DNAT, before SNAT
        # (a NodePort's masquerade on another node changes the source an ingress sees)
        by_ip = pod_by_ip(self.state)
        client = self.conn.client
        if client.node_name == name:
            eg = allowed(self.state, client, pkt.dst, pkt.dport or 0, pkt.proto, pkt.family, by_ip).egress
            steps.append(policy_step(eg, pod_label(client)))
            if not eg.allowed:
                self.conn.policy_drop = f"egress: {eg.reason}"
                return f"egress of {pod_label(client)}: {eg.reason}"
        if d.to == "pod":
            ing = allowed(self.state, pkt.src, pkt.dst, pkt.dport or 0, pkt.proto, pkt.family, by_ip).ingress
            steps.append(policy_step(ing, d.to_name))
            if not ing.allowed:
                self.conn.policy_drop = f"ingress: {ing.reason}"
                return f"ingress of {d.to_name}: {ing.reason}"
        return ""

    def _postrouting(self, name: str, d: rt.Decision, pkt: Pkt, steps: list[Step]) -> None:
        if self.reply:
            if self.conn.dnat_node == name and self.conn.vip is not None:
                vip, port = self.conn.vip
                steps.append(Step("undnat", f"conntrack: reply of the DNATed connection: source "
                                            f"{pkt.src}:{pkt.sport} -> {vip}:{port} (the address the client asked for)",
                                  {"from": f"{pkt.src}:{pkt.sport}", "to": f"{vip}:{port}"}))
                pkt.src, pkt.sport = vip, port
            return
        node_ip = self.facts.node_ip(name, pkt.family) or f"<IPv{pkt.family} of node {name}>"
        if self.conn.dnat_node == name and pkt.src == pkt.dst:
            steps.append(Step("snat", f"hairpin (inet podnet-svc, masquerading): the pod reached itself "
                                      f"through its Service: source {pkt.src} -> {node_ip}",
                              {"from": pkt.src, "to": node_ip, "why": "hairpin"}))
        elif self.conn.dnat_node == name and self.ext_path is not None and not self.ext_path.masquerade:
            steps.append(Step("nosnat", f"no SNAT ({self.ext_path.why}): the endpoint sees {pkt.src}"))
            return
        elif self.conn.dnat_node == name and self.external_ip:
            steps.append(Step("snat", f"external IP (inet podnet-svc, masquerading): the connection came to "
                                      f"{self.conn.vip[0] if self.conn.vip else 'an external IP'}, an external "
                                      f"destination: source {pkt.src} -> {node_ip}, so the reply comes back here",
                              {"from": pkt.src, "to": node_ip, "why": "externalIP"}))
        elif self.conn.dnat_node == name and self.node_port:
            steps.append(Step("snat", f"NodePort (inet podnet-svc, masquerading): the connection came to a "
                                      f"node address: source {pkt.src} -> {node_ip}, so the reply comes back here",
                              {"from": pkt.src, "to": node_ip, "why": "nodePort"}))
        elif self.nat.masquerades(pkt.src, pkt.dst):
            steps.append(Step("snat", f"NAT outgoing (inet podnet-nat, postrouting): {pkt.dst} is outside "
                                      f"every IP pool and the Service CIDRs and the source's pool has "
                                      f"natOutgoing: masquerade {pkt.src} -> {node_ip}",
                              {"from": pkt.src, "to": node_ip, "why": "natOutgoing"}))
        elif d.to in ("router",):
            steps.append(Step("nosnat", f"no SNAT: the pool of {pkt.src} has natOutgoing off: "
                                        f"the packet leaves with its pod address"))
            return
        else:
            return
        self.conn.snats.append((name, node_ip, pkt.src))
        pkt.src = node_ip

    def _leave(self, name: str, d: rt.Decision, pkt: Pkt, steps: list[Step]) -> tuple[Headers, Loc | None]:
        f = self.facts
        rack = f.rack_of(name)
        self.segment = rack
        router_mac = f.mac(f.router_netns, rack.router_dev, "router")
        if d.to == "pod":
            pod = self.state.get("Pod", *d.to_name.split("/", 1))
            assert isinstance(pod, Pod)
            return Headers(L2(HOST_MAC, pod_mac(pod.uid, rt.POD_IFNAME)), pkt.l3(), pkt.l4()), \
                ("podin", d.to_name, rt.POD_IFNAME, False)
        if d.to == "node" and d.dev == "pnvx":
            peer = f.node(d.to_name)
            src4, dst4 = f.node_ip(name, 4) or "?", (peer.ip4 if peer else "?")
            # the outer packet is routed by the node's own table: on the segment, or via the router
            od = rt.node_decision(self.state, f, name, dst4) if peer else None
            far = od is not None and od.via_router
            outer_l2 = L2(_eth(f, name), router_mac if far else _eth(f, d.to_name))
            outer = Headers(outer_l2, L3(4, src4, dst4, TTL), L4("UDP", None, VXLAN_PORT))
            inner = L2(rt.vtep_mac(self.state, name), rt.vtep_mac(self.state, d.to_name))
            steps.append(Step("encap", f"VXLAN (dev pnvx, VNI {VXLAN_VNI}): the packet is wrapped in "
                                       f"Ethernet/IPv4 {src4} -> {dst4}/UDP {VXLAN_PORT}",
                              {"vni": VXLAN_VNI, "outer_src": src4, "outer_dst": dst4}))
            if far and od is not None:
                steps.append(Step("route", f"route lookup for the outer packet to {dst4}: {od.route} "
                                           f"({d.to_name} is in another rack)", od.data(src4, dst4) | {"outer": True}))
                self.then = [("router", "", rack.router_dev, True)]
                self.outer = outer
                return Headers(inner, pkt.l3(), pkt.l4(), outer, VXLAN_VNI), ("underlay", "router", "", True)
            self.then = [("node", d.to_name, "pnvx", True)]
            return Headers(inner, pkt.l3(), pkt.l4(), outer, VXLAN_VNI), ("underlay", d.to_name, "", True)
        if d.to == "node" and d.via_router:  # another rack's node: the router forwards
            self.then = [("router", "", rack.router_dev, False)]
            return Headers(L2(_eth(f, name), router_mac), pkt.l3(), pkt.l4()), ("underlay", "router", "", False)
        if d.to == "node":
            self.then = [("node", d.to_name, rt.UNDERLAY_DEV, False)]
            return Headers(L2(_eth(f, name), _eth(f, d.to_name)), pkt.l3(), pkt.l4()), \
                ("underlay", d.to_name, "", False)
        self.then = [("router", "", rack.router_dev, False)]
        return Headers(L2(_eth(f, name), router_mac), pkt.l3(), pkt.l4()), ("underlay", "router", "", False)

    # -- the shared parts --------------------------------------------------------------------
    def _underlay(self, loc: Loc, pkt: Pkt) -> tuple[Hop, Loc | None, str, str]:
        prev = self.hops[-1]
        h = prev.headers
        dst_mac = (h.outer.l2.dst if h and h.outer else self._last_l2().dst)
        seg = self.segment
        port = loc[1] if loc[1] != "router" else seg.router_port
        step = Step("switch", f"bridge {seg.bridge} forwards the frame by its destination MAC {dst_mac} "
                              f"to port {port}", {"port": port, "bridge": seg.bridge})
        hop = Hop(f"underlay (bridge {seg.bridge})", "underlay", "", self.facts.underlay_netns,
                  prev.name if prev.kind != "router" else seg.router_port, port, (step,), h)
        return hop, self.then.pop(0), "delivered", ""

    def _router(self, loc: Loc, pkt: Pkt) -> tuple[Hop, Loc | None, str, str]:
        f = self.facts
        if loc[3] and self.outer is not None:
            return self._router_outer(loc, pkt, self.outer)
        d = rt.router_decision(f, pkt.dst, self.state)
        steps = [Step("route", f"route lookup for {pkt.dst}: {d.route}",
                      d.data(pkt.src, pkt.dst))]
        mk = lambda oif, h: Hop("router", "router", "", f.router_netns, loc[2], oif, tuple(steps), h)  # noqa: E731
        if d.to == "none":
            steps.append(Step("drop", f"no route to {pkt.dst}: ICMP destination unreachable"))
            return mk(None, None), None, "unreachable", f"the router has no route to {pkt.dst}"
        if d.to == "outside" and pkt.dst not in (f.echo4, f.echo6):
            steps.append(Step("drop", f"no host {pkt.dst} answers ARP/neighbour discovery on "
                                      f"{d.dev}: ICMP host unreachable"))
            return mk(None, None), None, "unreachable", f"no host {pkt.dst} in the outside world"
        steps.append(Step("ttl", f"forwarded: TTL {pkt.ttl} -> {pkt.ttl - 1}"))
        pkt.ttl -= 1
        if d.to == "outside":
            h = Headers(L2(f.mac(f.router_netns, rt.ROUTER_OUT_DEV, "router"),
                           f.mac(f.outside_netns, "eth0", "outside world")), pkt.l3(), pkt.l4())
            return mk(d.dev, h), ("outside", "", "eth0", False), "delivered", ""
        h = Headers(L2(f.mac(f.router_netns, d.dev, "router"), _eth(f, d.to_name)), pkt.l3(), pkt.l4())
        self.segment = f.rack_by_router_dev(d.dev) or f.rack_of(d.to_name)
        self.then = [("node", d.to_name, rt.UNDERLAY_DEV, False)]
        return mk(d.dev, h), ("underlay", d.to_name, "", False), "delivered", ""

    def _router_outer(self, loc: Loc, pkt: Pkt, outer: Headers) -> tuple[Hop, Loc | None, str, str]:
        """A VXLAN packet between racks: the router routes the outer IPv4 packet (it knows
        the racks, not the pods) and leaves the inner one as it is."""
        f = self.facts
        o = outer.l3
        d = rt.router_decision(f, o.dst, self.state)
        steps = [Step("route", f"route lookup for the outer packet to {o.dst} (VXLAN UDP/{VXLAN_PORT}; "
                               f"the inner packet is not looked at): {d.route}", d.data(o.src, o.dst) | {"outer": True})]
        mk = lambda oif, h: Hop("router", "router", "", f.router_netns, loc[2], oif, tuple(steps), h)  # noqa: E731
        if d.to != "node":
            steps.append(Step("drop", f"no node {o.dst} on the router's segments: ICMP destination unreachable"))
            return mk(None, None), None, "unreachable", f"the router cannot reach VTEP {o.dst}"
        steps.append(Step("ttl", f"forwarded: outer TTL {o.ttl} -> {o.ttl - 1}"))
        new_outer = Headers(L2(f.mac(f.router_netns, d.dev, "router"), _eth(f, d.to_name)),
                            L3(o.family, o.src, o.dst, o.ttl - 1), outer.l4)
        self.outer = None
        h = Headers(self._last_l2(), pkt.l3(), pkt.l4(), new_outer, VXLAN_VNI)
        self.segment = f.rack_by_router_dev(d.dev) or f.rack_of(d.to_name)
        self.then = [("node", d.to_name, "pnvx", True)]
        return mk(d.dev, h), ("underlay", d.to_name, "", True), "delivered", ""

    def _outside(self, loc: Loc, pkt: Pkt) -> tuple[Hop, Loc | None, str, str]:
        f = self.facts
        if (pkt.dport, pkt.proto) in f.echo_ports:
            what, outcome = f"delivered to the outside world's echo server {pkt.dst} port {pkt.dport}/{pkt.proto}; " \
                            f"it sees the source {pkt.src}", "delivered"
        else:
            what, outcome = f"{pkt.dst} has nothing listening on {pkt.dport}/{pkt.proto}: refused", "rejected"
        h = Headers(self._last_l2(), pkt.l3(), pkt.l4())
        hop = Hop("outside world", "outside", "", f.outside_netns, "eth0", None,
                  (Step("deliver" if outcome == "delivered" else "drop", what),), h)
        return hop, None, outcome, what

    def _podin(self, loc: Loc, pkt: Pkt) -> tuple[Hop, Loc | None, str, str]:
        pod = self.state.get("Pod", *loc[1].split("/", 1))
        assert isinstance(pod, Pod)
        hop, what = pod_deliver(pod, pkt, self._last_l2().src, self.reply)
        return hop, None, "delivered", what
