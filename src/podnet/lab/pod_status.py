"""The lab kubelet's status writes: Pods (pending with a reason, running with their IPs
and netns annotation) and Deployments, each through Writer.mutate (CAS, retried on a
fresh read; a change of status alone goes the status subresource's way). A write to an
object that is gone or was replaced (another uid) is dropped, a refused one logged.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.api.objects import Pod, Resource
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.datastore.interface import NotFound
from podnet.lab.workloads import pending_status, running_status

log = logging.getLogger("podnet.kubelet")


class StatusWriter:
    def __init__(self, writer: Writer):
        self.writer = writer

    def update(self, obj: Resource, mutate: Callable[[Resource], Resource]) -> Resource | None:
        """Write `mutate` of the stored object; None when the object is gone or replaced
        (another uid), or the write was refused."""
        def change(cur: Resource) -> Resource | None:
            return mutate(cur) if cur.uid == obj.uid else None
        try:
            return self.writer.mutate(obj.kind, obj.namespace, obj.name, change)
        except NotFound:
            return None
        except WriteError as e:
            log.warning("%s %s/%s: status not written: %s", obj.kind, obj.namespace, obj.name, e)
            return None

    def update_status(self, obj: Resource, status: Callable[[Resource], dict[str, Any]]) -> None:
        self.update(obj, lambda cur: cur.with_status(status(cur)))

    def pending(self, pod: Pod, reason: str, message: str) -> None:
        self.update(pod, lambda cur: cur.with_status(pending_status(cur, reason, message)))  # type: ignore[arg-type]

    def running(self, pod: Pod, ips: list[str], host_ips: list[str], netns: str,
                message: str, started: str, *, ready: bool) -> None:
        """Status Running (IPs, host IPs, readiness) and the netns annotation; nothing is
        written when the pod already says so."""
        def mutate(cur: Resource) -> Resource:
            out = cur.with_status(running_status(cur, ips, host_ips, started, ready,  # type: ignore[arg-type]
                                                 message))
            ann = dict(cur.annotations)
            ann[NETNS_ANNOTATION] = netns
            return out.with_metadata(annotations=ann)

        if pod.annotations.get(NETNS_ANNOTATION) == netns and pod.ready == ready and pod.pod_ips == ips:
            return
        self.update(pod, mutate)
