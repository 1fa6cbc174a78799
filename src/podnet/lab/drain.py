"""Draining a node before it leaves the lab (`podnet node delete`, issue 17 §4). Pure.

As `kubectl drain --force` does for a node that goes away: every pod bound to the node is
deleted gracefully (marked terminating: the kubelet runs its preStop hook, SIGTERM, waits
up to its grace period, tears it down, then deletes it for good: lab/termination.py).
A Deployment's pod is replaced by its Deployment on another node (the node is cordoned
first, so nothing new lands on it); a bare pod is gone for good, as it would be with its
node. Pods already terminating are waited for, not deleted again. The drain is over when
no pod is bound to the node any more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from podnet.api.objects import Pod
from podnet.lab.termination import grace_of

SLACK = 15.0  # seconds over the longest grace period before the drain gives up waiting


@dataclass(frozen=True)
class DrainPlan:
    evict: tuple[Pod, ...]  # to delete gracefully now
    waiting: tuple[Pod, ...]  # already terminating
    replaced: tuple[str, ...]  # ns/name of evicted pods a Deployment owns (it starts new ones elsewhere)
    ends: tuple[str, ...]  # ns/name of bare pods: gone with the node
    timeout: float  # how long the drain may wait for all of them


def owned_by_deployment(pod: Pod) -> bool:
    return any(r.get("kind") in ("Deployment", "ReplicaSet") and r.get("controller")
               for r in pod.metadata.get("ownerReferences") or [])


def on_node(pods: Iterable[Pod], node: str) -> list[Pod]:
    return sorted((p for p in pods if p.node_name == node), key=lambda p: (p.namespace, p.name))


def plan_drain(pods: Iterable[Pod], node: str) -> DrainPlan:
    bound = on_node(pods, node)
    evict = tuple(p for p in bound if not p.deletion_timestamp)
    waiting = tuple(p for p in bound if p.deletion_timestamp)
    name = lambda p: f"{p.namespace}/{p.name}"  # noqa: E731
    return DrainPlan(evict, waiting,
                     tuple(name(p) for p in evict if owned_by_deployment(p)),
                     tuple(name(p) for p in evict if not owned_by_deployment(p)),
                     max((grace_of(p) for p in bound), default=0.0) + SLACK)
