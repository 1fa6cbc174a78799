"""Namespace, Node, Pod (its containers and requested IPs) and Deployment: typed views. Pure."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Mapping

from podnet.api.selector import LabelSelector
from podnet.api.meta import Resource


# ---- Namespace, Node ------------------------------------------------------------------
class Namespace(Resource):
    kind_name = "Namespace"


# What a node's agent reports: in the store, as status.agent (health, heartbeat, syncs) and
# status.podnet (blocks, encap, vxlanMAC); through the Kubernetes API (issue 15), where the
# kubelet owns the Node's status and kube-apiserver drops fields a Node has not, as these
# annotations, each the same object as JSON (as Calico keeps projectcalico.org/* there).
AGENT_ANNOTATION = "podnet.io/agent"
PODNET_ANNOTATION = "podnet.io/node"


def node_report(o: Resource, part: str) -> dict[str, Any]:
    """The agent's report `part` ("agent" or "podnet") of a Node: its status field, else
    its annotation; {} when neither is an object."""
    got = o.status.get(part)
    if isinstance(got, dict):
        return got
    raw = o.annotations.get(AGENT_ANNOTATION if part == "agent" else PODNET_ANNOTATION)
    try:
        got = json.loads(raw) if raw else None
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}


class Node(Resource):
    """A node of the cluster. spec: podCIDRs (informational); status.addresses as Kubernetes
    (type InternalIP), plus podnet's own report (agent health, blocks: `node_report`)."""
    kind_name = "Node"

    @property
    def internal_ips(self) -> list[str]:
        return [a.get("address", "") for a in self.status.get("addresses") or []
                if a.get("type") == "InternalIP"]

    @property
    def agent_report(self) -> dict[str, Any]:
        return node_report(self, "agent")

    @property
    def podnet_report(self) -> dict[str, Any]:
        return node_report(self, "podnet")


# ---- Pod ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    protocol: str = "TCP"
    name: str = ""


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    ports: tuple[ContainerPort, ...]
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


def _ports(c: Mapping[str, Any]) -> tuple[ContainerPort, ...]:
    out = []
    for p in c.get("ports") or []:
        out.append(ContainerPort(int(p.get("containerPort", 0)), str(p.get("protocol") or "TCP"),
                                 str(p.get("name") or "")))
    return tuple(out)


def containers_of(pod_spec: Mapping[str, Any]) -> tuple[Container, ...]:
    return tuple(Container(str(c.get("name", "")), str(c.get("image", "")), _ports(c),
                           tuple(str(x) for x in c.get("command") or []),
                           tuple(str(x) for x in c.get("args") or []))
                 for c in pod_spec.get("containers") or [])


# A pod's fixed addresses: podnet's annotation, else Calico's (a Calico manifest keeps working)
IP_ADDRS_ANNOTATIONS = ("podnet.io/ipAddrs", "cni.projectcalico.org/ipAddrs")


def requested_ips(annotations: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(annotation, addresses) of the first ipAddrs annotation present: a JSON list of IP
    addresses, at most one per family. ValueError says what is wrong with it."""
    import json
    for key in IP_ADDRS_ANNOTATIONS:
        if key not in annotations:
            continue
        try:
            items = json.loads(str(annotations[key]))
        except ValueError:
            raise ValueError(f"{key}: not JSON; write a list such as [\"10.244.1.5\", \"fd00:10:244::5\"]") from None
        if not isinstance(items, list) or not items:
            raise ValueError(f"{key}: expected a non-empty JSON list of IP addresses")
        seen: dict[int, str] = {}
        for item in items:
            try:
                addr = ipaddress.ip_address(str(item).strip()) if isinstance(item, str) else None
            except ValueError:
                addr = None
            if addr is None:
                raise ValueError(f"{key}: {item!r} is not an IP address")
            if addr.version in seen:
                raise ValueError(f"{key}: two IPv{addr.version} addresses ({seen[addr.version]}, {addr}); "
                                 f"a pod gets one address per family")
            seen[addr.version] = str(addr)
        return key, list(seen.values())
    return None


class Pod(Resource):
    kind_name = "Pod"

    @property
    def requested_ips(self) -> list[str]:
        """Addresses the pod's ipAddrs annotation asks for (ValueError when malformed)."""
        got = requested_ips(self.annotations)
        return got[1] if got else []

    @property
    def containers(self) -> tuple[Container, ...]:
        return containers_of(self.spec)

    @property
    def ports(self) -> tuple[ContainerPort, ...]:
        return tuple(p for c in self.containers for p in c.ports)

    def named_port(self, name: str, protocol: str | None = None) -> int | None:
        for p in self.ports:
            if p.name == name and (protocol is None or p.protocol == protocol):
                return p.container_port
        return None

    @property
    def node_name(self) -> str:
        return str(self.spec.get("nodeName") or "")

    @property
    def host_network(self) -> bool:
        return bool(self.spec.get("hostNetwork", False))

    @property
    def dns_policy(self) -> str:
        return str(self.spec.get("dnsPolicy") or "ClusterFirst")

    @property
    def dns_config(self) -> dict[str, Any]:
        return self.spec.get("dnsConfig") or {}

    @property
    def hostname(self) -> str:
        return str(self.spec.get("hostname") or "")

    @property
    def subdomain(self) -> str:
        return str(self.spec.get("subdomain") or "")

    @property
    def pod_ips(self) -> list[str]:
        ips = [p.get("ip", "") for p in self.status.get("podIPs") or [] if p.get("ip")]
        if not ips and self.status.get("podIP"):
            ips = [self.status["podIP"]]
        return ips

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Pending")

    @property
    def ready(self) -> bool:
        for c in self.status.get("conditions") or []:
            if c.get("type") == "Ready":
                return bool(c.get("status") == "True")
        return False

    @property
    def owner_references(self) -> list[dict[str, Any]]:
        return list(self.metadata.get("ownerReferences") or [])


# ---- Deployment -----------------------------------------------------------------------
class Deployment(Resource):
    kind_name = "Deployment"

    @property
    def replicas(self) -> int:
        r = self.spec.get("replicas")
        return 1 if r is None else int(r)

    @property
    def selector(self) -> LabelSelector:
        return LabelSelector.from_dict(self.spec.get("selector"))

    @property
    def template(self) -> dict[str, Any]:
        return self.spec.get("template") or {}
