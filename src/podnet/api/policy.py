"""NetworkPolicy: typed views of its rules and peers. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from podnet.api.selector import LabelSelector
from podnet.api.meta import Resource


# A staged policy (issue 20 §2, Calico's StagedNetworkPolicy idea as an annotation, so the
# kind stays exactly the upstream one): stored and validated, never enforced; `podnet
# analyze` shows what it would change, `podnet promote` removes the annotation.
STAGED_ANNOTATION = "podnet.io/staged"


def is_staged(obj: Resource) -> bool:
    # the one annotation read directly (`annotations` copies them all: this runs for every
    # policy on every sync)
    v = (obj.metadata.get("annotations") or {}).get(STAGED_ANNOTATION)
    return v is not None and str(v) == "true"


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
