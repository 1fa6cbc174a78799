"""Service and EndpointSlice: typed views. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from podnet.api.selector import LabelSelector
from podnet.api.meta import Resource

# spec.trafficDistribution's values (PreferClose: PreferSameZone's older name, KEP-3015)
TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameZone", "PreferSameNode")

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
    def traffic_distribution(self) -> str:
        """PreferSameZone | PreferClose | PreferSameNode, or "" (every endpoint alike): the
        EndpointSlice controller hints endpoints from it (calc/topology.py)."""
        return str(self.spec.get("trafficDistribution") or "")

    @property
    def external_ips(self) -> list[str]:
        """spec.externalIPs: addresses outside the cluster that route to a node; traffic to
        one on a service port is the Service's, as kube-proxy treats it."""
        return [str(x) for x in self.spec.get("externalIPs") or [] if x]

    @property
    def load_balancer_ips(self) -> list[str]:
        """The ingress addresses status.loadBalancer.ingress gives a LoadBalancer Service (ip,
        not hostname; kube-proxy leaves out those with ipMode Proxy: their balancer proxies)."""
        if self.type != "LoadBalancer":
            return []
        lb = (self.status.get("loadBalancer") or {}) if isinstance(self.status, dict) else {}
        return [str(i["ip"]) for i in lb.get("ingress") or []
                if isinstance(i, dict) and i.get("ip") and i.get("ipMode") != "Proxy"]

    @property
    def load_balancer_source_ranges(self) -> list[str]:
        return [str(x).strip() for x in self.spec.get("loadBalancerSourceRanges") or [] if str(x).strip()]

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
