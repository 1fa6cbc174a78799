"""Pure decisions of the lab kubelet: scheduling, Deployment expansion, pod status.

No I/O: the kubelet (lab/kubelet.py) feeds objects in and writes what comes out.
- `schedule`: the node with the fewest pods (ties: node order); spec.nodeName honoured.
- `deployment_plan`: which pods a Deployment needs created or deleted. Pods are named
  `<deployment>-<pod-template-hash>-<5 chars>` and carry the template's labels, the
  `pod-template-hash` label and an ownerReference to the Deployment, as Kubernetes does.
  A changed template replaces every pod of the old template. Terminating pods (with a
  deletionTimestamp) no longer count.
- `running_status`: the status a running pod reports (podIP(s), hostIP, phase, Ready).
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from podnet.api.objects import Deployment, Pod, Resource, from_dict

SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.String alphabet
HASH_LABEL = "pod-template-hash"


def node_load(nodes: Sequence[str], pods: Iterable[Pod]) -> dict[str, int]:
    """How many pods each node has."""
    load = {n: 0 for n in nodes}
    for p in pods:
        if p.node_name in load:
            load[p.node_name] += 1
    return load


def schedule(pod: Pod, nodes: Sequence[str], pods: Iterable[Pod],
             load: dict[str, int] | None = None) -> str | None:
    """The node for an unscheduled pod (the one with the fewest pods, the first of equals);
    None when there is no node at all. `load` (node_load's, kept by the caller as it binds
    pods) spares counting every pod for every pod: O(n) per pod was O(n²) for a Deployment
    of 1,000 (issue 22)."""
    if pod.node_name:
        return pod.node_name
    if not nodes:
        return None
    if load is None:
        load = node_load(nodes, (p for p in pods if p.key != pod.key))
    order = {n: i for i, n in enumerate(nodes)}
    return min(nodes, key=lambda n: (load.get(n, 0), order[n]))


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    # Kubernetes renders its FNV hash with the same safe alphabet; 10 chars like its hashes
    n = int(digest[:16], 16)
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(SUFFIX_CHARS))
        out += SUFFIX_CHARS[r]
    return out


def owned_by(pod: Resource, owner: Resource) -> bool:
    return any(ref.get("uid") == owner.uid and ref.get("kind") == owner.kind
               for ref in pod.metadata.get("ownerReferences") or [])


def new_pod(dep: Deployment, h: str, rng: random.Random, taken: set[str]) -> Pod:
    tmpl = copy.deepcopy(dep.template)
    md = dict(tmpl.get("metadata") or {})
    labels = dict(md.get("labels") or {})
    labels[HASH_LABEL] = h
    while True:
        name = f"{dep.name}-{h}-" + "".join(rng.choice(SUFFIX_CHARS) for _ in range(5))
        if name not in taken:
            taken.add(name)
            break
    md.update({"name": name, "namespace": dep.namespace, "labels": labels,
               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": dep.name, "uid": dep.uid, "controller": True,
                                    "blockOwnerDeletion": True}]})
    md.pop("uid", None)
    md.pop("resourceVersion", None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": md,
           "spec": copy.deepcopy(tmpl.get("spec") or {})}
    return from_dict(pod)  # type: ignore[return-value]


@dataclass(frozen=True)
class DeploymentPlan:
    create: tuple[Pod, ...]
    delete: tuple[Pod, ...]
    status: dict[str, Any]


def _delete_order(p: Pod) -> tuple[int, int, str, str]:
    """Kubernetes' preference when scaling down: unscheduled, then not ready, then newest."""
    created = str(p.metadata.get("creationTimestamp") or "")
    return (0 if not p.node_name else 1, 0 if not p.ready else 1,
            "".join(chr(255 - ord(c)) for c in created), p.name)


def deployment_plan(dep: Deployment, pods: Iterable[Pod], rng: random.Random | None = None) -> DeploymentPlan:
    rng = rng or random.Random()
    pods = list(pods)
    # a terminating pod is on its way out: neither counted nor deleted again (Kubernetes'
    # ReplicaSet controller filters active pods the same way), so its replacement starts now
    owned = [p for p in pods if p.namespace == dep.namespace and owned_by(p, dep)
             and not p.deletion_timestamp]
    h = template_hash(dep.template)
    current = [p for p in owned if p.labels.get(HASH_LABEL) == h]
    old = [p for p in owned if p.labels.get(HASH_LABEL) != h]
    want = max(0, dep.replicas)
    create: list[Pod] = []
    delete: list[Pod] = list(old)
    if len(current) < want:
        taken = {p.name for p in pods if p.namespace == dep.namespace}  # terminating ones too
        create = [new_pod(dep, h, rng, taken) for _ in range(want - len(current))]
    elif len(current) > want:
        delete += sorted(current, key=_delete_order)[:len(current) - want]
    keep = [p for p in current if p not in delete]
    ready = sum(1 for p in keep if p.ready)
    status = {"observedGeneration": int(dep.metadata.get("generation") or 1),
              "replicas": len(keep), "updatedReplicas": len(keep), "readyReplicas": ready,
              "availableReplicas": ready, "unavailableReplicas": max(0, want - ready)}
    return DeploymentPlan(tuple(create), tuple(delete), status)


def running_status(pod: Pod, ips: Sequence[str], host_ips: Sequence[str], started: str,
                   ready: bool, message: str = "") -> dict[str, Any]:
    st = dict(pod.status)
    cond_ready = "True" if ready else "False"
    conds = [{"type": "PodScheduled", "status": "True"},
             {"type": "Initialized", "status": "True"},
             {"type": "ContainersReady", "status": cond_ready},
             {"type": "Ready", "status": cond_ready}]
    if message:
        conds[-1]["message"] = message
    st.update({
        "phase": "Running", "podIP": ips[0] if ips else "", "podIPs": [{"ip": ip} for ip in ips],
        "hostIP": host_ips[0] if host_ips else "", "hostIPs": [{"ip": ip} for ip in host_ips],
        "startTime": st.get("startTime") or started, "conditions": conds,
        "containerStatuses": [{"name": c.name, "image": c.image, "imageID": "", "ready": ready,
                               "restartCount": 0, "started": True,
                               "state": {"running": {"startedAt": started}}}
                              for c in pod.containers],
    })
    st.pop("reason", None)
    if message:
        st["message"] = message
    else:
        st.pop("message", None)
    return st


def pending_status(pod: Pod, reason: str, message: str) -> dict[str, Any]:
    st = dict(pod.status)
    st.update({"phase": "Pending", "reason": reason, "message": message,
               "conditions": [{"type": "PodScheduled", "status": "True" if pod.node_name else "False"},
                              {"type": "Ready", "status": "False", "reason": reason,
                               "message": message}]})
    return st
