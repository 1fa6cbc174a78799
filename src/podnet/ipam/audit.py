"""IPAM state against the cluster (`podnet ipam check`, after `calicoctl ipam check`). Pure.

Input: the blocks, Pods and Nodes as read from the store. Output: findings as plain data.
Every allocation is classified exactly once:
- live: its handle names a Pod (container ID = the pod's uid) on the handle's node;
- leaked: a handle of our network whose pod or node is gone (or the pod runs elsewhere);
- unknown owner: a handle of another network, or not in our `<node>/<network>/<id>/<if>`
  form: someone else's, so never called leaked.
A Pod whose status.podIPs are in no block, or held by another handle, is "missing".
Blocks whose affine node has no Node object are "orphaned"; blocks with no allocation "empty".
"""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Iterable

from podnet.api.objects import Node, Pod
from podnet.ipam.blocks import Block, Handle
from podnet.ipam.cidr import Address, address_at

LAB_NETWORK = "podnet"  # the network name the lab's CNI config carries (cni.config.make_netconf)

LIVE, LEAKED, UNKNOWN = "live", "leaked", "unknown owner"
ORPHANED, EMPTY = "orphaned", "empty"


@dataclass(frozen=True)
class Allocation:
    address: str
    block: str
    handle: str
    status: str  # LIVE, LEAKED or UNKNOWN
    reason: str  # why, in words: the pod that holds it, or what is gone
    pod: str = ""  # namespace/name of the live pod


@dataclass(frozen=True)
class Missing:
    pod: str  # namespace/name
    node: str
    address: str
    reason: str


@dataclass(frozen=True)
class BlockFinding:
    block: str
    pool: str
    node: str
    problem: str  # ORPHANED or EMPTY


@dataclass(frozen=True)
class Report:
    allocations: tuple[Allocation, ...]
    missing: tuple[Missing, ...]
    blocks: tuple[BlockFinding, ...]

    def of(self, status: str) -> list[Allocation]:
        return [a for a in self.allocations if a.status == status]

    @property
    def clean(self) -> bool:
        """Nothing leaked, nothing missing (orphaned/empty blocks and other networks' addresses
        are reported but are not errors)."""
        return not self.of(LEAKED) and not self.missing

    def summary(self) -> str:
        orphaned = sum(b.problem == ORPHANED for b in self.blocks)
        empty = sum(b.problem == EMPTY for b in self.blocks)
        return (f"{len(self.allocations)} allocations: {len(self.of(LIVE))} live, "
                f"{len(self.of(LEAKED))} leaked, {len(self.of(UNKNOWN))} unknown owner; "
                f"{len(self.missing)} pod addresses missing; "
                f"{orphaned} blocks of missing nodes, {empty} empty blocks")

    def to_dict(self) -> dict:
        return {"clean": self.clean, "summary": self.summary(),
                "allocations": [asdict(a) for a in self.allocations],
                "missing": [asdict(m) for m in self.missing],
                "blocks": [asdict(b) for b in self.blocks]}


def _key(pod: Pod) -> str:
    return f"{pod.namespace}/{pod.name}"


def _pod_networked(pod: Pod) -> bool:
    """A pod whose addresses come from IPAM: scheduled, not on the host's network."""
    return bool(pod.node_name) and not pod.host_network and bool(pod.uid)


def classify(handle_text: str, pods_by_uid: dict[str, Pod], nodes: set[str],
             network: str = LAB_NETWORK) -> tuple[str, str, str]:
    """(status, reason, pod) of one allocation's handle."""
    h = Handle.parse(handle_text)
    if not h.node:
        return UNKNOWN, "handle not of the form <node>/<network>/<containerID>/<ifname>", ""
    if h.network != network:
        return UNKNOWN, f"network {h.network}, not {network}", ""
    if h.node not in nodes:
        return LEAKED, f"node {h.node} does not exist", ""
    pod = pods_by_uid.get(h.container_id)
    if pod is None:
        return LEAKED, f"no pod with uid {h.container_id}", ""
    if pod.node_name != h.node:
        return LEAKED, f"pod {_key(pod)} runs on node {pod.node_name or '(none)'}, not {h.node}", ""
    return LIVE, f"pod {_key(pod)}", _key(pod)


def audit(blocks: Iterable[Block], pods: Iterable[Pod], nodes: Iterable[Node],
          network: str = LAB_NETWORK) -> Report:
    ordered = sorted(blocks, key=lambda b: (b.cidr.version, int(b.cidr.network_address)))
    node_names = {n.name for n in nodes}
    networked = [p for p in pods if _pod_networked(p)]
    by_uid = {p.uid: p for p in networked}

    allocations = []
    held: dict[Address, str] = {}
    for b in ordered:
        for o, h in sorted(b.allocations.items()):
            addr = address_at(b.cidr, o)
            held[addr] = h
            status, reason, pod = classify(h, by_uid, node_names, network)
            allocations.append(Allocation(str(addr), str(b.cidr), h, status, reason, pod))

    missing = []
    for p in sorted(networked, key=_key):
        for text in p.pod_ips:
            why = _missing_reason(text, p, held, network)
            if why:
                missing.append(Missing(_key(p), p.node_name, text, why))

    findings = []
    for b in ordered:
        if b.node and b.node not in node_names:
            findings.append(BlockFinding(str(b.cidr), b.pool, b.node, ORPHANED))
        if not b.allocations:
            findings.append(BlockFinding(str(b.cidr), b.pool, b.node, EMPTY))
    return Report(tuple(allocations), tuple(missing), tuple(findings))


def _missing_reason(text: str, pod: Pod, held: dict[Address, str], network: str) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return "not an IP address"
    h = held.get(addr)
    if h is None:
        return "not allocated in any block"
    got = Handle.parse(h)
    if (got.node, got.network, got.container_id) != (pod.node_name, network, pod.uid):
        return f"allocated to {h}"
    return ""
