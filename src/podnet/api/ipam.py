"""IPPool, podnet's (Calico's) pool of pod addresses: typed view. Pure."""
from __future__ import annotations

import ipaddress
from typing import Mapping

from podnet.api.selector import LabelSelector, parse_calico
from podnet.api.meta import Resource


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
    def allowed_uses(self) -> tuple[str, ...]:
        """Calico's allowedUses: Workload, Tunnel (the default) or LoadBalancer."""
        uses = self.spec.get("allowedUses")
        return tuple(str(u) for u in uses) if isinstance(uses, list) and uses else ("Workload", "Tunnel")

    @property
    def for_workloads(self) -> bool:
        """Pods take addresses from it (its CIDR is a pod CIDR)."""
        return "Workload" in self.allowed_uses

    @property
    def for_load_balancers(self) -> bool:
        return "LoadBalancer" in self.allowed_uses

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
