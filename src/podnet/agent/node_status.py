"""The agent's part of its Node: what it reports and how it writes that without taking what
another writer owns (issue 15: in a real cluster the kubelet owns the Node's status).

What the agent reports (`NodeReport`): its health and sync counts (`agent`), its blocks,
encapsulation and VXLAN MAC (`podnet`), its addresses, and whether it is healthy.

- On a store (SQLite, etcd: the lab, where no kubelet posts node status) the agent writes
  status.agent, status.podnet, status.nodeInfo.podnetVersion, its addresses, its CPUs in
  capacity and allocatable, and the Ready condition by read-change-write (`Writer.mutate`, CAS), keeping every other status field
  and every other condition (merged by type).
- Through the Kubernetes API (a store with `patch`, issue 15 §1), as Calico does: the
  report goes into annotations (`podnet.io/agent`, `podnet.io/node`: kube-apiserver drops
  status fields a Node has not) by a merge patch of the metadata, with the agent's
  `--node-label` labels; the status gets only the NetworkUnavailable condition (False,
  PodnetIsUp, as Calico's CalicoIsUp) by a strategic merge patch, keyed by condition type,
  and only when it is missing or says otherwise. Addresses and Ready are the kubelet's:
  the agent adds addresses (and capacity/allocatable CPUs where missing) only to a Node
  that has no InternalIP yet (nobody posts its status: the lab), in a patch pinned to the
  resourceVersion it read, so a kubelet's post wins; and writes Ready only when there is none or the one there is its own (reason
  PodnetAgentReady), never over a kubelet's.
A Node that does not exist is created (the lab has no kubelet registering nodes).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from podnet.apiserver.errors import GaveUp, WriteError
from podnet.apiserver.write import Writer
from podnet.api.core import AGENT_ANNOTATION, PODNET_ANNOTATION
from podnet.api.objects import Node, Resource
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore, NotFound

log = logging.getLogger("podnet.agent")

NETWORK_CONDITION = "NetworkUnavailable"
NETWORK_REASON = "PodnetIsUp"
AGENT_READY_REASON = "PodnetAgentReady"  # a Ready condition the agent wrote (no kubelet did)
FIELD_MANAGER = "podnet-agent"
ATTEMPTS = 3


@dataclass
class NodeReport:
    name: str
    ips: list[str]
    agent: dict[str, Any]
    podnet: dict[str, Any]
    healthy: bool
    version: str
    labels: dict[str, str] = field(default_factory=dict)
    cpus: dict[str, str] = field(default_factory=dict)   # capacity = allocatable, as a kubelet's

    @property
    def addresses(self) -> list[dict[str, str]]:
        return [{"type": "InternalIP", "address": ip} for ip in self.ips] + \
            [{"type": "Hostname", "address": self.name}]

    @property
    def ready(self) -> dict[str, str]:
        return {"type": "Ready", "status": "True" if self.healthy else "False",
                "lastHeartbeatTime": str(self.agent.get("heartbeat") or "")}

    @property
    def network(self) -> dict[str, Any]:
        return {"type": NETWORK_CONDITION, "status": "False", "reason": NETWORK_REASON,
                "message": "podnet's agent is running on this node",
                "lastTransitionTime": self.agent.get("heartbeat")}

    @property
    def annotations(self) -> dict[str, str]:
        return {AGENT_ANNOTATION: _compact(self.agent),
                PODNET_ANNOTATION: _compact({**self.podnet, "version": self.version})}

    def store_status(self, current: dict[str, Any]) -> dict[str, Any]:
        """`current` with the agent's parts written in, everything else kept."""
        out = dict(current)
        out.update(addresses=self.addresses, agent=self.agent, podnet=self.podnet,
                   nodeInfo={**(current.get("nodeInfo") or {}), "podnetVersion": self.version})
        if self.cpus:
            out.update(capacity={**(current.get("capacity") or {}), **self.cpus},
                       allocatable={**(current.get("allocatable") or {}), **self.cpus})
        out["conditions"] = _merged_conditions(current.get("conditions"), [self.ready])
        return out


def _merged_conditions(current: Any, mine: list[dict[str, str]]) -> list[dict[str, Any]]:
    types = {c["type"] for c in mine}
    kept = [c for c in current or [] if isinstance(c, dict) and c.get("type") not in types]
    return kept + mine


def register(store: Datastore, report: NodeReport) -> None:
    """Create or update the Node with the agent's report (see the module's doc)."""
    if hasattr(store, "patch"):
        _through_api(store, report)
    else:
        _in_store(store, report)


def _new_node(report: NodeReport, api: bool = False) -> Node:
    """The Node to create: with the store's status; through the API, with the annotations
    and only the Kubernetes status fields (addresses, the two conditions)."""
    meta: dict[str, Any] = {"name": report.name,
                            "labels": {"kubernetes.io/hostname": report.name, **report.labels}}
    status = report.store_status({})
    if api:
        meta["annotations"] = report.annotations
        status = {"addresses": report.addresses,
                  "conditions": [report.network, {**report.ready, "reason": AGENT_READY_REASON}]}
        if report.cpus:
            status.update(capacity=dict(report.cpus), allocatable=dict(report.cpus))
    return Node({"apiVersion": "podnet.io/v1", "kind": "Node", "metadata": meta, "spec": {},
                 "status": status})


def _create(writer: Writer, report: NodeReport, api: bool = False) -> bool:
    """True when created (or not creatable: logged); False when someone else created it."""
    try:
        writer.create(_new_node(report, api))
    except AlreadyExists:
        return False
    except WriteError as e:
        log.warning("could not create Node %s: %s", report.name, e)
    return True


def _in_store(store: Datastore, report: NodeReport) -> None:
    writer = Writer(store)

    def update(cur: Resource) -> Resource:
        own = report.labels
        if own and any(cur.labels.get(k) != v for k, v in own.items()):
            cur = cur.with_metadata(labels={**cur.labels, **own})
        return cur.with_status(report.store_status(cur.status))
    for _ in range(ATTEMPTS):  # a create racing another writer's create or delete
        try:
            writer.mutate("Node", "", report.name, update)
            return
        except NotFound:
            pass
        except GaveUp as e:
            log.warning("could not update Node %s: %s", report.name, e)
            return
        if _create(writer, report):
            return
    log.warning("could not register Node %s: created and deleted by others meanwhile", report.name)


def _through_api(store: Any, report: NodeReport) -> None:
    for _ in range(ATTEMPTS):
        try:
            _patch_node(store, report)
            return
        except NotFound:
            if _create(Writer(store), report, api=True):
                return
        except Conflict:
            continue  # a kubelet posted the node's status meanwhile: look again
    log.warning("could not register Node %s: changed by others meanwhile", report.name)


def _patch_node(store: Any, report: NodeReport) -> None:
    """The metadata patch first (its answer is the Node as it now is), then the status
    patch, only when there is something of the agent's to change in it."""
    meta: dict[str, Any] = {"annotations": report.annotations}
    if report.labels:
        meta["labels"] = report.labels
    node = store.patch("Node", "", report.name, {"metadata": meta}, "merge",
                       field_manager=FIELD_MANAGER)
    conditions = {str(c.get("type")): c for c in node.status.get("conditions") or []
                  if isinstance(c, dict)}
    mine = []
    have = conditions.get(NETWORK_CONDITION) or {}
    if have.get("status") != "False" or have.get("reason") != NETWORK_REASON:
        mine.append(report.network)
    ready = conditions.get("Ready")
    if ready is None or (ready.get("reason") == AGENT_READY_REASON
                         and ready.get("status") != report.ready["status"]):
        mine.append({**report.ready, "reason": AGENT_READY_REASON})
    status: dict[str, Any] = {"conditions": mine} if mine else {}
    body: dict[str, Any] = {"status": status}
    if not Node(node.raw).internal_ips:  # no kubelet has posted this node's status
        status["addresses"] = [*report.addresses, {"$patch": "replace"}]
        for f in ("capacity", "allocatable"):
            if report.cpus and not node.status.get(f):
                status[f] = dict(report.cpus)
        body["metadata"] = {"resourceVersion": str(node.resource_version)}  # CAS
    if status:
        store.patch("Node", "", report.name, body, "strategic", subresource="status",
                    field_manager=FIELD_MANAGER)


def _compact(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"))
