"""Host protection and input anti-spoofing, rendered into table `inet podnet-pol` (issue 12 §1). No I/O.

What pods may send to a node is decided in calc/host.py; this module only lays it out,
as the static chains and the sets that dataplane/nft/policy.py puts in the policy table
(the same table, because the anti-spoofing sets `pod-ifaces` and `pod-addr4/6` live
there and nft sets cannot be shared between tables):

- base chain `input` (input hook, filter+5): a packet from a known pod veth must carry
  that pod's address (IPv6 link-local sources pass: a veth is a link of two, and
  neighbour discovery needs them), counted in `spoofed-input`; then whatever comes from a
  pod (a local veth, or an IP pool's address: a remote pod not masqueraded) goes to
  `pod-to-host`;
- `EGRESS_RULES`, put in the policy table's `egress` chain after its anti-spoofing rules:
  what a local pod sends to another node's address (`@nodes4/6`) goes to `pod-to-node`,
  checked here because NAT outgoing masquerades it on its way, after which the other node
  cannot tell it from its peer node;
- `pod-to-node` lets the NodePort range pass (a NodePort is a Service), then is
  `pod-to-host`, which returns (lets the packet on) for established and related
  packets, Service DNAT (ct status dnat), ping and IPv6 neighbour discovery and the
  allowed ports (`@host-ports`), and rejects everything else (TCP reset, else ICMP
  administratively prohibited), counted in `host-refused`. `return`, never `accept`:
  in the forward hook the NetworkPolicy egress check still follows.
"""
from __future__ import annotations

from podnet.api.defaults import NODE_PORT_RANGE
from podnet.calc.host import HostProtection
from podnet.dataplane.nft import flowlog

NODE_PORTS = f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"

INPUT_CHAIN = (
    "type filter hook input priority filter + 5; policy accept;",
    ("iifname @pod-ifaces iifname . ip saddr != @pod-addr4 counter name spoofed-input " + flowlog.log(flowlog.SPOOFED_INPUT) + " drop",
     "iifname @pod-ifaces ip6 saddr != fe80::/10 iifname . ip6 saddr != @pod-addr6 "
     "counter name spoofed-input " + flowlog.log(flowlog.SPOOFED_INPUT) + " drop",
     "iifname @pod-ifaces goto pod-to-host",
     "ip saddr . meta l4proto @pools4 goto pod-to-host",
     "ip6 saddr . meta l4proto @pools6 goto pod-to-host"))

EGRESS_RULES = ("iifname @pod-ifaces ip daddr @nodes4 jump pod-to-node",
                "iifname @pod-ifaces ip6 daddr @nodes6 jump pod-to-node")

# Regular chains, static: what changes lives in the sets.
CHAINS = {
    "pod-to-node": ("meta l4proto { tcp, udp, sctp } th dport " + NODE_PORTS + " return",
                    "goto pod-to-host"),
    "pod-to-host": (
        "ct state established,related return",
        "ct status dnat return",
        "icmp type echo-request return",
        "icmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } return",
        "meta l4proto . th dport @host-ports return",
        "meta l4proto tcp counter name host-refused " + flowlog.log(flowlog.HOST_REFUSED) + " reject with tcp reset",
        "counter name host-refused " + flowlog.log(flowlog.HOST_REFUSED) + " reject with icmpx admin-prohibited"),
}

# The pools are concatenated with the protocol, as the policy renderer's ipBlock sets
# are: nft 1.0 would fetch a single-field interval set's elements before every element
# edit in the table.
SETS = {
    "host-ports": "type inet_proto . inet_service;",
    "pools4": "type ipv4_addr . inet_proto; flags interval;",
    "pools6": "type ipv6_addr . inet_proto; flags interval;",
    "nodes4": "type ipv4_addr;", "nodes6": "type ipv6_addr;",
}
COUNTERS = ("host-refused", "spoofed-input")


def host_sets(host: HostProtection | None) -> dict[str, tuple[str, frozenset[str]]]:
    """The sets' declarations and elements (empty without `host`: then nothing comes from
    a known pool nor goes to a known node, and no port is allowed to a local pod)."""
    elems: dict[str, frozenset[str]] = {k: frozenset() for k in SETS}
    if host is not None:
        elems["host-ports"] = frozenset(f"{proto} . {port}" for proto, port in host.ports)
        for fam in (4, 6):
            elems[f"pools{fam}"] = frozenset(f"{c} . 0-255" for c in host.pools[fam])
            elems[f"nodes{fam}"] = frozenset(host.nodes[fam])
    return {name: (SETS[name], e) for name, e in elems.items()}
