"""The lab kubelet's Deployment controller: create and delete a Deployment's Pods as
lab/workloads.py's plan says, write the Deployment's status, and delete the Pods of a
Deployment that is gone (the garbage collector's cascade for Pods its owner left behind).
`pods` is the kubelet's cache; a Pod created here is counted in it at once.
"""
from __future__ import annotations

import logging

from podnet.api.objects import Deployment, Pod, Resource
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.datastore.interface import AlreadyExists, NotFound
from podnet.lab.pod_status import StatusWriter
from podnet.lab.workloads import deployment_plan

log = logging.getLogger("podnet.kubelet")

PodKey = tuple[str, str]


def reconcile_deployment(writer: Writer, pods: dict[PodKey, Pod], dep: Deployment) -> None:
    plan = deployment_plan(dep, pods.values())
    for pod in plan.delete:
        try:
            writer.delete("Pod", pod.namespace, pod.name)
        except NotFound:
            pass
    for pod in plan.create:
        try:
            created = writer.create(pod)
            if isinstance(created, Pod):
                pods[(created.namespace, created.name)] = created  # count it at once
        except AlreadyExists:
            continue
        except (NotFound, WriteError) as e:  # namespace gone, template refused
            log.warning("deployment %s/%s: pod %s not created: %s", dep.namespace, dep.name, pod.name, e)
            break
    if plan.create or plan.delete:
        plan = deployment_plan(dep, pods.values())  # status after the changes
    if {k: dep.status.get(k) for k in plan.status} != plan.status:
        want = plan.status
        StatusWriter(writer).update_status(dep, lambda cur: {**cur.status, **want})


def collect_garbage(writer: Writer, pods: dict[PodKey, Pod], dep: Resource) -> None:
    for pod in list(pods.values()):
        if any(r.get("uid") == dep.uid for r in pod.metadata.get("ownerReferences") or []):
            try:
                writer.delete("Pod", pod.namespace, pod.name)
            except NotFound:
                pass
