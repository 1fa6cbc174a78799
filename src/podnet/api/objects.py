"""Kubernetes and podnet objects: the user's manifest kept whole, with typed views. Pure.

A `Resource` wraps the manifest dict exactly as written (every field survives a round
trip through the store) and adds read-only accessors for what podnet uses. Subclasses
per kind add kind-specific accessors; `from_dict` picks the subclass by `kind`.
Mutating helpers return new objects (`with_status`, `with_spec`), never edit in place.
"""
from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

from podnet.api.selector import LabelSelector, parse_calico

# kind -> (apiVersion, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("v1", False),
    "Node": ("podnet.io/v1", False),
    "Pod": ("v1", True),
    "Service": ("v1", True),
    "Deployment": ("apps/v1", True),
    "EndpointSlice": ("discovery.k8s.io/v1", True),
    "NetworkPolicy": ("networking.k8s.io/v1", True),
    "IPPool": ("podnet.io/v1", False),
    "IPAMBlock": ("podnet.io/v1", False),
    "ServiceIPAllocation": ("podnet.io/v1", False),
    "NodePortAllocation": ("podnet.io/v1", False),
}
# Kinds podnet writes for itself (IPAM state): stored like any object, refused by `apply`.
INTERNAL_KINDS: frozenset[str] = frozenset({"IPAMBlock", "ServiceIPAllocation", "NodePortAllocation"})
# Other apiVersions accepted for a kind (users write `v1` Nodes, for example).
ALT_API_VERSIONS: dict[str, tuple[str, ...]] = {"Node": ("v1",)}

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class ObjectKey:
    kind: str
    namespace: str  # "" for cluster-scoped kinds
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


class Resource:
    kind_name: ClassVar[str] = ""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]):
        self.raw: dict[str, Any] = dict(raw)

    # ---- identity -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.raw.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.raw.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        return self.raw.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        if not is_namespaced(self.kind):
            return ""
        return str(self.metadata.get("namespace") or "default")

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.namespace, self.name)

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("labels") or {}).items()}

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.metadata.get("annotations") or {}).items()}

    @property
    def spec(self) -> dict[str, Any]:
        return self.raw.get("spec") or {}

    @property
    def status(self) -> dict[str, Any]:
        return self.raw.get("status") or {}

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid", ""))

    @property
    def resource_version(self) -> int:
        try:
            return int(self.metadata.get("resourceVersion", 0))
        except (TypeError, ValueError):
            return 0

    @property
    def deletion_timestamp(self) -> str | None:
        return self.metadata.get("deletionTimestamp")

    # ---- copies ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)

    def with_status(self, status: Mapping[str, Any]) -> "Resource":
        d = self.to_dict()
        d["status"] = copy.deepcopy(dict(status))
        return from_dict(d)

    def with_spec(self, spec: Mapping[str, Any]) -> "Resource":
        d = self.to_dict()
        d["spec"] = copy.deepcopy(dict(spec))
        return from_dict(d)

    def with_metadata(self, **fields: Any) -> "Resource":
        d = self.to_dict()
        d.setdefault("metadata", {}).update(copy.deepcopy(fields))
        return from_dict(d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resource) and self.raw == other.raw

    def __repr__(self) -> str:
        return f"<{self.key}>"


def is_namespaced(kind: str) -> bool:
    return KINDS.get(kind, ("", True))[1]


# ---- Namespace, Node ------------------------------------------------------------------
class Namespace(Resource):
    kind_name = "Namespace"


class Node(Resource):
    """A node of the cluster. spec: podCIDRs (informational); status.addresses as Kubernetes
    (type InternalIP), plus podnet's own status fields (agent health, blocks)."""
    kind_name = "Node"

    @property
    def internal_ips(self) -> list[str]:
        return [a.get("address", "") for a in self.status.get("addresses") or []
                if a.get("type") == "InternalIP"]


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
                return c.get("status") == "True"
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


# ---- Service --------------------------------------------------------------------------
@dataclass(frozen=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str = ""
    target_port: int | str = 0  # number, or a container port name
    node_port: int = 0

    @property
    def effective_target(self) -> int | str:
        return self.target_port or self.port


class Service(Resource):
    kind_name = "Service"

    @property
    def type(self) -> str:
        return str(self.spec.get("type") or "ClusterIP")

    @property
    def ports(self) -> tuple[ServicePort, ...]:
        out = []
        for p in self.spec.get("ports") or []:
            tp = p.get("targetPort", 0)
            if isinstance(tp, str) and tp.isdigit():
                tp = int(tp)
            out.append(ServicePort(int(p.get("port", 0)), str(p.get("protocol") or "TCP"),
                                   str(p.get("name") or ""), tp or 0, int(p.get("nodePort") or 0)))
        return tuple(out)

    @property
    def selector(self) -> LabelSelector:
        return LabelSelector.from_map(self.spec.get("selector"))

    @property
    def has_selector(self) -> bool:
        return bool(self.spec.get("selector"))

    @property
    def headless(self) -> bool:
        return self.spec.get("clusterIP") == "None"

    @property
    def cluster_ips(self) -> list[str]:
        ips = [str(x) for x in self.spec.get("clusterIPs") or []]
        if not ips and self.spec.get("clusterIP"):
            ips = [str(self.spec["clusterIP"])]
        return [ip for ip in ips if ip and ip != "None"]

    @property
    def ip_families(self) -> list[str]:
        return [str(x) for x in self.spec.get("ipFamilies") or []]

    @property
    def ip_family_policy(self) -> str:
        return str(self.spec.get("ipFamilyPolicy") or "SingleStack")

    @property
    def session_affinity(self) -> str:
        return str(self.spec.get("sessionAffinity") or "None")

    @property
    def session_affinity_timeout(self) -> int:
        cfg = ((self.spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        return int(cfg.get("timeoutSeconds") or 10800)

    @property
    def internal_traffic_policy(self) -> str:
        """Cluster (default) | Local: ClusterIP traffic only to endpoints on the client's node."""
        return str(self.spec.get("internalTrafficPolicy") or "Cluster")

    @property
    def external_traffic_policy(self) -> str:
        """Cluster (default) | Local: NodePort traffic only to endpoints on the node it came to."""
        return str(self.spec.get("externalTrafficPolicy") or "Cluster")

    @property
    def external_name(self) -> str:
        return str(self.spec.get("externalName") or "")

    @property
    def publish_not_ready(self) -> bool:
        return bool(self.spec.get("publishNotReadyAddresses", False))


# ---- EndpointSlice --------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    hostname: str = ""
    target_ref: tuple[str, str, str] | None = None  # (kind, namespace, name)


@dataclass(frozen=True)
class EndpointPort:
    port: int
    protocol: str = "TCP"
    name: str = ""


class EndpointSlice(Resource):
    kind_name = "EndpointSlice"

    @property
    def service_name(self) -> str:
        return self.labels.get("kubernetes.io/service-name", "")

    @property
    def address_type(self) -> str:
        return str(self.raw.get("addressType") or "IPv4")

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        out = []
        for e in self.raw.get("endpoints") or []:
            cond = e.get("conditions") or {}
            ready = cond.get("ready")
            ready = True if ready is None else bool(ready)
            serving = cond.get("serving")
            serving = ready if serving is None else bool(serving)
            ref = e.get("targetRef")
            out.append(Endpoint(tuple(str(a) for a in e.get("addresses") or []), ready, serving,
                                bool(cond.get("terminating", False)), str(e.get("nodeName") or ""),
                                str(e.get("hostname") or ""),
                                (str(ref.get("kind", "")), str(ref.get("namespace", "")),
                                 str(ref.get("name", ""))) if ref else None))
        return tuple(out)

    @property
    def ports(self) -> tuple[EndpointPort, ...]:
        return tuple(EndpointPort(int(p.get("port", 0)), str(p.get("protocol") or "TCP"),
                                  str(p.get("name") or ""))
                     for p in self.raw.get("ports") or [])


# ---- NetworkPolicy --------------------------------------------------------------------
@dataclass(frozen=True)
class IPBlock:
    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPeer:
    pod_selector: LabelSelector | None  # None: field absent
    namespace_selector: LabelSelector | None  # None: field absent (= policy's namespace)
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None  # None: all ports
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    """One ingress or egress rule. `peers is None` means the `from`/`to` field is absent or
    empty: all sources/destinations. `ports is None` likewise means all ports."""
    peers: tuple[PolicyPeer, ...] | None
    ports: tuple[PolicyPort, ...] | None


def _peer(p: Mapping[str, Any]) -> PolicyPeer:
    ipb = p.get("ipBlock")
    return PolicyPeer(
        LabelSelector.from_dict(p["podSelector"]) if "podSelector" in p and p["podSelector"] is not None else None,
        LabelSelector.from_dict(p["namespaceSelector"]) if "namespaceSelector" in p and p["namespaceSelector"] is not None else None,
        IPBlock(str(ipb.get("cidr", "")), tuple(str(x) for x in ipb.get("except") or [])) if ipb else None,
    )


def _policy_port(p: Mapping[str, Any]) -> PolicyPort:
    port = p.get("port")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    end = p.get("endPort")
    return PolicyPort(str(p.get("protocol") or "TCP"), port, int(end) if end is not None else None)


def _rules(items: Any, peer_key: str) -> tuple[PolicyRule, ...]:
    out = []
    for r in items or []:
        r = r or {}
        peers = r.get(peer_key)
        ports = r.get("ports")
        out.append(PolicyRule(tuple(_peer(p or {}) for p in peers) if peers else None,
                              tuple(_policy_port(p or {}) for p in ports) if ports else None))
    return tuple(out)


class NetworkPolicy(Resource):
    kind_name = "NetworkPolicy"

    @property
    def pod_selector(self) -> LabelSelector:
        # Required field; `{}` selects every pod of the namespace.
        return LabelSelector.from_dict(self.spec.get("podSelector") or {})

    @property
    def policy_types(self) -> tuple[str, ...]:
        """Kubernetes defaulting: when omitted, Ingress always, plus Egress when the
        policy has any egress rules."""
        pt = self.spec.get("policyTypes")
        if pt:
            return tuple(str(x) for x in pt)
        return ("Ingress", "Egress") if self.spec.get("egress") else ("Ingress",)

    @property
    def ingress(self) -> tuple[PolicyRule, ...]:
        return _rules(self.spec.get("ingress"), "from")

    @property
    def egress(self) -> tuple[PolicyRule, ...]:
        return _rules(self.spec.get("egress"), "to")


# ---- IPPool ---------------------------------------------------------------------------
class IPPool(Resource):
    kind_name = "IPPool"

    @property
    def cidr(self) -> str:
        return str(self.spec.get("cidr", ""))

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr, strict=False)

    @property
    def family(self) -> int:
        return self.network.version

    @property
    def block_size(self) -> int:
        bs = self.spec.get("blockSize")
        if bs is None:
            return 26 if self.family == 4 else 122
        return int(bs)

    @property
    def nat_outgoing(self) -> bool:
        return bool(self.spec.get("natOutgoing", False))

    @property
    def disabled(self) -> bool:
        return bool(self.spec.get("disabled", False))

    @property
    def node_selector(self) -> LabelSelector:
        """Calico's nodeSelector is an expression (`all()` or `k == 'v'`); podnet accepts
        kubectl selector syntax or `all()`; missing means all nodes."""
        ns = self.spec.get("nodeSelector")
        if ns is None or str(ns).strip() in ("", "all()"):
            return LabelSelector.everything()
        if isinstance(ns, Mapping):
            return LabelSelector.from_dict(ns)
        return parse_calico(str(ns))


_BY_KIND: dict[str, type[Resource]] = {
    c.kind_name: c for c in (Namespace, Node, Pod, Deployment, Service, EndpointSlice,
                             NetworkPolicy, IPPool)
}


def from_dict(d: Mapping[str, Any]) -> Resource:
    cls = _BY_KIND.get(str(d.get("kind", "")), Resource)
    return cls(d)


def iter_kinds() -> Iterator[str]:
    return iter(KINDS)
