"""A pod's sandbox, the runtime's part of the lab kubelet: the workload's listeners started
in it, and undoing it from its record (lab/records.py) as a runtime removes a pod sandbox:
the listeners, its container processes, the CNI DEL (which releases its IPs), the netns and
its resolv.conf, then the record. Undoing works from the record alone, so the kubelet can
undo pods whose object is gone (a restart, `podnet down`)."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from podnet.api.defaults import NETNS_ANNOTATION
from podnet.api.objects import Pod, Resource
from podnet.lab import containers, network
from podnet.lab.records import PodRecords
from podnet.lab.serve import ServeError
from podnet.lab.serve_control import ServeClient
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec

log = logging.getLogger("podnet.lab.kubelet")


def start_workload(serve: ServeClient, pod: Pod, netns: str) -> list[str]:
    """Ask the node's `podnet serve` to listen on the pod's containerPorts (containers with
    a command of their own listen themselves); its warnings."""
    ports = sorted({(p.container_port, p.protocol) for c in pod.containers if not c.command
                    for p in c.ports})
    resp = serve.request({"op": "add", "pod": f"{pod.namespace}/{pod.name}", "netns": netns, "ports": ports})
    if not resp.get("ok"):
        raise ServeError(str(resp.get("error")))
    return list(resp.get("warnings") or [])


def record_of(spec: LabSpec, records: PodRecords, key: tuple[str, str], obj: Resource) -> dict[str, Any]:
    """The pod's record, or, when none was written, what its object says."""
    rec = records.read(spec.pod_netns(obj.uid)) if obj.uid else None
    if rec is None:
        rec = {"namespace": key[0], "name": key[1], "uid": obj.uid, "node": (obj.spec.get("nodeName") or ""),
               "netns": obj.annotations.get(NETNS_ANNOTATION, ""), "hostNetwork": bool(obj.spec.get("hostNetwork"))}
    return rec


def undo(spec: LabSpec, state: LabState, serve: Mapping[str, ServeClient], cni_url: str,
         records: PodRecords, rec: dict[str, Any]) -> None:
    node_name, netns = str(rec.get("node") or ""), str(rec.get("netns") or "")
    client = serve.get(node_name)
    if client is not None:
        try:
            client.request({"op": "del", "pod": f"{rec['namespace']}/{rec['name']}"})
        except ServeError as e:
            log.warning("serve del %s/%s: %s", rec["namespace"], rec["name"], e)
    if netns:
        containers.stop(state, netns, str(rec["name"]))
    if not rec.get("hostNetwork") and netns.startswith(spec.prefix):
        try:
            node = spec.node(node_name)
            network.detach(spec, cni_url, node, netns, str(rec["uid"]))
        except (network.NetworkError, ValueError) as e:
            log.warning("CNI DEL %s/%s: %s", rec["namespace"], rec["name"], e)
        network.delete_netns(netns)
        network.remove_resolv_conf(netns)
    records.remove(netns)


def remove_orphans(spec: LabSpec, records: PodRecords) -> None:
    """Pod netns of this lab that no record explains (a crash between netns add and the
    record): remove them; CNI GC of the IPAM state is the plugin's job."""
    known = {str(r.get("netns")) for r in records.all()}
    for ns in network.list_pod_netns(spec):
        if ns not in known:
            network.delete_netns(ns)
