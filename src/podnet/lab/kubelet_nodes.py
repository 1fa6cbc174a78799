"""The lab's nodes as the lab kubelet knows them (issue 17 §4: nodes come and go).

The spec comes from lab.json, read again whenever a Node appears that the spec lacks or
a node of the spec loses its Node: `podnet node add` writes lab.json before the new
node's agent registers, `podnet node delete` deletes the Node once the node is drained.
Cordoned nodes (`spec.unschedulable`, set by `podnet node delete` before it drains) get
no new pod. Each node's workload-server client and CNI URL are kept here too.
"""
from __future__ import annotations

import logging
from typing import Iterable

from podnet.api.objects import Resource
from podnet.lab.serve_control import ServeClient
from podnet.lab.state import LabState
from podnet.lab.topology import LabSpec, spec_from_dict
from podnet.lab.up import node_cni_url, serve_socket

log = logging.getLogger("podnet.kubelet")


class LabNodes:
    def __init__(self, spec: LabSpec, state: LabState, cni_urls: dict[str, str]):
        self.spec = spec
        self.state = state
        self.cni_urls = dict(cni_urls)  # per node, where it has its own identity
        self.cordoned: set[str] = set()
        self.serve = {n.name: ServeClient(serve_socket(state, n.name)) for n in spec.nodes}

    def schedulable(self) -> list[str]:
        return [n.name for n in self.spec.nodes if n.name not in self.cordoned]

    def relisted(self, nodes: Iterable[Resource]) -> bool:
        """Every Node, after a (re)list; whether the spec changed."""
        nodes = list(nodes)
        self.cordoned = {n.name for n in nodes if n.spec.get("unschedulable")}
        names = {n.name for n in self.spec.nodes}
        return bool({n.name for n in nodes} ^ names) and self.reload()

    def event(self, kind: str, node: Resource) -> bool:
        """A Node's ADDED/MODIFIED/DELETED; whether the spec changed."""
        if kind != "DELETED" and node.spec.get("unschedulable"):
            self.cordoned.add(node.name)
        else:
            self.cordoned.discard(node.name)
        known = any(n.name == node.name for n in self.spec.nodes)
        return (kind == "DELETED") == known and self.reload()

    def reload(self) -> bool:
        meta = self.state.read_meta()
        if not meta.get("spec"):
            return False
        spec = spec_from_dict(meta["spec"])
        if spec == self.spec:
            return False
        log.info("lab nodes now: %s", ", ".join(n.name for n in spec.nodes))
        self.spec = spec
        self.serve = {n.name: self.serve.get(n.name) or ServeClient(serve_socket(self.state, n.name))
                      for n in spec.nodes}
        self.cni_urls.update({n.name: node_cni_url(meta, n.name) for n in spec.nodes})
        return True
