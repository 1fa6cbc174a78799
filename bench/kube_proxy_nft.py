"""kube-proxy's nftables layout, rendered for podnet's service table: the reference of
bench/services.py. Pure: text in, text out (the caller applies and lists).

Follows kubernetes pkg/proxy/nftables/proxier.go (setupNFTables, syncProxyRules,
writeServiceToEndpointRules) for ClusterIP services, their external IPs and LoadBalancer
ingress IPs (with loadBalancerSourceRanges), with Cluster traffic policies and no session
affinity, IPv4 (kube-proxy runs one `ip` table per family):

- table `ip kube-proxy`; base chains filter-{prerouting,input,forward,output} at dstnat-10,
  filter-output-post-dnat at dstnat+10, nat-{prerouting,output} at dstnat, nat-postrouting
  at srcnat; the `ct state new` jumps to the endpoints/firewall/cluster-ips checks;
- `services`: `ip daddr . meta l4proto . th dport vmap @service-ips` and the NodePort
  dispatch through `@service-nodeports`, limited to `@nodeport-ips`;
- per service port a chain `service-<HASH>-ns/name/tcp/port`: the masquerade rule for
  traffic from outside the cluster CIDR (the local-traffic detector by cluster CIDR), then
  `numgen random mod N vmap { i : goto endpoint-... }`;
- per endpoint a chain `endpoint-<HASH>-ns/name/tcp/port__ip/port`: hairpin masquerade
  mark, then `meta l4proto tcp dnat to ip:port`;
- per service port with an external IP or a load-balancer IP, a chain
  `external-<HASH>-...` (`jump mark-for-masquerade`, `goto` the service chain) that
  `@service-ips` sends those addresses to; with source ranges a chain `firewall-<HASH>-...`
  (`ip saddr != { ranges } drop`) that `@firewall-ips` sends the load-balancer IPs to;
- `mark-for-masquerade` sets bit 0x4000; `masquerading` masquerades marked packets;
- every ClusterIP in `@cluster-ips` (unknown ports of a ClusterIP are rejected).

A full sync writes what kube-proxy writes on its first sync (table, setup, every chain
`add`+`flush`ed, every rule, one `add element` per element). A partial sync rewrites only
the changed services' chains, like skipServiceUpdate; chains that are no longer used are
flushed now and deleted by a later sync at least one second afterwards (stale chains:
the kernel before 6.2 notices an unreferenced chain late). kube-proxy learns which chains
exist by listing its table (knftables List: `nft --json list table ip kube-proxy`, once for
chains and once for sets) on every sync; `stale_after_list` takes that listing, or
`existing` (what this layout created and has not deleted: the same names) when the caller
times the listing apart.
"""
from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field

T = "ip kube-proxy"
MASQ_MARK = "0x004000"  # 1 << 14, kube-proxy's default --masquerade-bit, as "%#08x"

# name, type, hook, priority: knftables' DNATPriority ("dstnat", -100) and SNATPriority
# ("srcnat", 100) as numbers, as knftables writes them (nft refuses the name "dstnat" on
# the input and forward hooks)
BASE_CHAINS = [
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
]
JUMP_CHAINS = [  # destination, source, match
    ("nodeport-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-forward", "ct state new "),
    ("service-endpoints-check", "filter-output", "ct state new "),
    ("firewall-check", "filter-prerouting", "ct state new "),
    ("firewall-check", "filter-output", "ct state new "),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new "),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new "),
]
VMAP3 = "ipv4_addr . inet_proto . inet_service : verdict"


def hash_and_truncate(name: str) -> str:
    """proxier.go hashAndTruncate: 8 base32 characters of sha256(name), '-', name."""
    return base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8] + "-" + name


def service_chain(e) -> str:
    return "service-" + hash_and_truncate(f"{e.namespace}/{e.name}/{e.protocol.lower()}/{e.port_name}")


def external_chain(e) -> str:
    return "external-" + hash_and_truncate(_svc_base(e))


def firewall_chain(e) -> str:
    return "firewall-" + hash_and_truncate(_svc_base(e))


def endpoint_chain(e, ep) -> str:
    base = f"{e.namespace}/{e.name}/{e.protocol.lower()}/{e.port_name}__{ep.ip}/{ep.port}"
    return "endpoint-" + hash_and_truncate(base)


@dataclass
class KubeProxyLayout:
    """What kube-proxy keeps between syncs: the elements it wrote and its stale chains."""
    node_ip: str
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    elements: dict[tuple[str, str], str] = field(default_factory=dict)  # (map, key) -> value
    stale: dict[str, float] = field(default_factory=dict)  # chain -> when it went stale
    active: set[str] = field(default_factory=set)
    existing: set[str] = field(default_factory=set)  # service/endpoint chains in the kernel

    def full(self, entries) -> str:
        """The first sync: setup, then every service (entries: ServicePortEntry, IPv4)."""
        out = self._setup()
        self.elements.clear()
        self.active = set()
        for e in entries:
            out += self._service(e)
        self.existing = set(self.active)
        return "\n".join(out) + "\n"

    def partial(self, entries) -> str:
        """A sync after `entries` (the changed services, with their new endpoints) changed."""
        out: list[str] = []
        for e in entries:
            old = {c for c in self.active if c.startswith("endpoint-") and _base_of(c) == _svc_base(e)}
            self.active -= old
            out += self._service(e)
        self.existing |= self.active
        return "\n".join(out) + "\n"

    def stale_after_list(self, listed_chains: list[str], now: float | None = None) -> str:
        """kube-proxy's end of sync: flush every listed service/endpoint chain not in use."""
        now = time.monotonic() if now is None else now
        out = []
        for c in listed_chains:
            if "/" in c and c not in self.active:
                out.append(f"flush chain {T} {c}")
                self.stale.setdefault(c, now)
            elif c in self.stale:
                del self.stale[c]
        return "\n".join(out) + ("\n" if out else "")

    def delete_stale(self, now: float | None = None) -> str:
        """kube-proxy's start of sync: delete chains stale for more than a second (own transaction)."""
        now = time.monotonic() if now is None else now
        old = [c for c, t in self.stale.items() if t < now - 1.0]
        for c in old:
            del self.stale[c]
            self.existing.discard(c)
        return "".join(f"delete chain {T} {c}\n" for c in old)

    def _setup(self) -> list[str]:
        out = [f'add table {T} {{ comment "rules for kube-proxy" ; }}']
        for name, *_ in BASE_CHAINS:  # the first sync re-creates the base chains
            out += [f"add chain {T} {name}", f"delete chain {T} {name}"]
        for name, typ, hook, prio in BASE_CHAINS:
            out += [f"add chain {T} {name} {{ type {typ} hook {hook} priority {prio} ; }}",
                    f"flush chain {T} {name}"]
        made: set[str] = set()
        for dst, src, match in JUMP_CHAINS:
            out += _ensure_chain(dst, made)
            out.append(f"add rule {T} {src} {match}jump {dst}")
        for chain in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
            out += _ensure_chain(chain, made)
        out += [
            f"add rule {T} mark-for-masquerade mark set mark or {MASQ_MARK}",
            f"add rule {T} masquerading mark and {MASQ_MARK} == 0 return",
            f"add rule {T} masquerading mark set mark xor {MASQ_MARK}",
            f"add rule {T} masquerading masquerade fully-random",
            f'add set {T} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}',
            f'add rule {T} cluster-ips-check ip daddr @cluster-ips reject'
            f' comment "Reject traffic to invalid ports of ClusterIPs"',
            f'add rule {T} cluster-ips-check ip daddr {{ {self.service_cidr} }} drop'
            f' comment "Drop traffic to unallocated ClusterIPs"',
            f'add set {T} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }}',
            f"flush set {T} nodeport-ips",
            f"add element {T} nodeport-ips {{ {self.node_ip} }}",
            f'add map {T} no-endpoint-services {{ type {VMAP3} ;'
            f' comment "vmap to drop or reject packets to services with no endpoints" ; }}',
            f'add map {T} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ;'
            f' comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}',
            f'add chain {T} reject-chain {{ comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }}',
            f"flush chain {T} reject-chain",
            f"add rule {T} reject-chain reject",
            f"add rule {T} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            f"add rule {T} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport"
            f" vmap @no-endpoint-nodeports",
            f'add map {T} firewall-ips {{ type {VMAP3} ;'
            f' comment "destinations that are subject to LoadBalancerSourceRanges" ; }}',
            f"add rule {T} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
            f'add map {T} service-ips {{ type {VMAP3} ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}',
            f'add map {T} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}',
            f"add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips",
            f"add rule {T} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
        ]
        out += [f"flush set {T} cluster-ips"] + [f"flush map {T} {m}" for m in (
            "service-ips", "firewall-ips", "no-endpoint-services", "no-endpoint-nodeports", "service-nodeports")]
        return out

    def _service(self, e) -> list[str]:
        """One service port's chains, elements and rules, in syncProxyRules' order."""
        proto = e.protocol.lower()
        svc = service_chain(e)
        eps = [(endpoint_chain(e, ep), ep) for ep in e.endpoints]
        out: list[str] = []
        for chain, _ in eps:
            out += [f"add chain {T} {chain}", f"flush chain {T} {chain}"]
        out += [f"add chain {T} {svc}", f"flush chain {T} {svc}"]
        self.active |= {svc, *(c for c, _ in eps)}
        out += self._ensure_elem("cluster-ips", e.vip, "")
        out += self._ensure_elem("service-ips", f"{e.vip} . {proto} . {e.port}", f"goto {svc}")
        out.append(f"add rule {T} {svc} ip daddr {e.vip} {proto} dport {e.port}"
                   f" ip saddr != {self.cluster_cidr} jump mark-for-masquerade")
        vmap = " , ".join(f"{i} : goto {chain}" for i, (chain, _) in enumerate(eps))
        out.append(f"add rule {T} {svc} numgen random mod {len(eps)} vmap {{ {vmap} }}")
        for chain, ep in eps:
            out += [f"add rule {T} {chain} ip saddr {ep.ip} jump mark-for-masquerade",
                    f"add rule {T} {chain} meta l4proto {proto} dnat to {ep.ip}:{ep.port}"]
        return out + self._external(e, svc, proto)

    def _external(self, e, svc: str, proto: str) -> list[str]:
        """External IPs and load-balancer IPs: the external chain (eTP Cluster: every
        endpoint, masqueraded) and, with source ranges, the firewall chain."""
        out: list[str] = []
        if (e.external_ips or e.lb_ips) and e.endpoints:
            ext = external_chain(e)
            self.active.add(ext)
            out += [f"add chain {T} {ext}", f"flush chain {T} {ext}",
                    f"add rule {T} {ext} jump mark-for-masquerade", f"add rule {T} {ext} goto {svc}"]
            for ip in (*e.external_ips, *e.lb_ips):
                out += self._ensure_elem("service-ips", f"{ip} . {proto} . {e.port}", f"goto {ext}")
        if e.source_ranges and e.lb_ips:
            fw = firewall_chain(e)
            self.active.add(fw)
            out += [f"add chain {T} {fw}", f"flush chain {T} {fw}",
                    f"add rule {T} {fw} ip saddr != {{ {', '.join(e.source_ranges)} }} drop"]
            for ip in e.lb_ips:
                out += self._ensure_elem("firewall-ips", f"{ip} . {proto} . {e.port}", f"goto {fw}")
        return out

    def _ensure_elem(self, container: str, key: str, value: str) -> list[str]:
        """nftElementStorage.ensureElem: write an element only when it is new or changed."""
        old = self.elements.get((container, key))
        if old == value:
            return []
        elem = f"{{ {key} : {value} }}" if value else f"{{ {key} }}"
        out = [f"delete element {T} {container} {{ {key} }}"] if old is not None else []
        self.elements[(container, key)] = value
        return out + [f"add element {T} {container} {elem}"]


def _ensure_chain(chain: str, made: set[str]) -> list[str]:
    if chain in made:
        return []
    made.add(chain)
    return [f"add chain {T} {chain}", f"flush chain {T} {chain}"]


def _svc_base(e) -> str:
    return f"{e.namespace}/{e.name}/{e.protocol.lower()}/{e.port_name}"


def _base_of(endpoint_chain_name: str) -> str:
    """The service part of an endpoint chain's name (between the hash and '__')."""
    return endpoint_chain_name.split("-", 2)[2].split("__", 1)[0]
