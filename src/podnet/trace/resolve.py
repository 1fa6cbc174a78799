"""Turn the user's SRC and DST words into a pod, a Service or an address. Pure.

DST forms: `POD`, `NS/POD`, a Service name as a pod would look it up in DNS (`web`,
`web.shop`, `web.shop.svc`, `web.shop.svc.cluster.local`), an IP address (a pod's, a
Service's virtual IP, or anything else: the outside world), each optionally followed by
`:PORT[/PROTO]` (IPv6 with a port in brackets: `[fd00::1]:80/tcp`).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from podnet.api.defaults import CLUSTER_DOMAIN
from podnet.api.objects import Pod, Service
from podnet.calc.model import ClusterState

PROTOS = ("TCP", "UDP", "SCTP")


class TraceError(ValueError):
    """Bad input: one line naming what is wrong."""


@dataclass(frozen=True)
class Dest:
    text: str
    port: int | None
    proto: str


@dataclass(frozen=True)
class Target:
    kind: str  # pod | service | ip
    ip: str
    pod: Pod | None = None
    service: Service | None = None
    notes: tuple[str, ...] = ()
    dns_name: str = ""  # the name a DNS lookup in the pod turns into `ip` (to confirm)


def parse_dest(text: str) -> Dest:
    """`DST[:PORT[/PROTO]]`."""
    raw = text.strip()
    if not raw:
        raise TraceError("DST is empty")
    proto = "TCP"
    if "/" in raw and raw.rsplit("/", 1)[1].upper() in PROTOS:
        raw, p = raw.rsplit("/", 1)
        proto = p.upper()
    port: str | None = None
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    else:
        host = raw
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise TraceError(f"DST {text!r}: port {port!r} is not a number between 1 and 65535")
    return Dest(host, int(port) if port else None, proto)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def family_ip(ips: list[str], family: int) -> str | None:
    return next((str(ipaddress.ip_address(a)) for a in ips
                 if ipaddress.ip_address(a).version == family), None)


def find_pod(state: ClusterState, namespace: str, text: str) -> Pod:
    ns, _, name = text.rpartition("/")
    ns = ns or namespace
    pod = state.get("Pod", ns, name)
    if not isinstance(pod, Pod):
        raise TraceError(f"pod {ns}/{name} not found")
    if not pod.pod_ips:
        raise TraceError(f"pod {ns}/{name} has no IP yet (phase {pod.phase or 'Pending'})")
    return pod


def _service_target(svc: Service, family: int, notes: list[str]) -> Target:
    vip = family_ip(list(svc.cluster_ips), family)
    if vip is None:
        fams = sorted({ipaddress.ip_address(a).version for a in svc.cluster_ips if _ip(a)})
        raise TraceError(f"Service {svc.namespace}/{svc.name} has no IPv{family} ClusterIP "
                         f"(it has: {', '.join(f'IPv{f}' for f in fams) or 'none: headless'})")
    return Target("service", vip, service=svc, notes=tuple(notes))


def resolve(state: ClusterState, namespace: str, text: str, family: int,
            outside_names: Mapping[str, tuple[str, ...]] | None = None) -> Target:
    """`namespace` is the source pod's: a short name is looked up there, as its resolver
    would. `outside_names`: what the outside world's DNS answers (cluster DNS forwards
    names outside the cluster domain to it)."""
    ip = _ip(text)
    if ip is not None:
        for p in state.pods:
            if ip in {str(ipaddress.ip_address(a)) for a in p.pod_ips}:
                return Target("pod", ip, pod=p)
        for s in state.services:
            if ip in {a for a in (_ip(c) for c in s.cluster_ips) if a}:
                return Target("service", ip, service=s,
                              notes=(f"{ip} is the virtual IP of Service {s.namespace}/{s.name}",))
        return Target("ip", ip)
    if "/" in text:
        pod = find_pod(state, namespace, text)
        return Target("pod", family_ip(pod.pod_ips, family) or _no_family(pod, family), pod=pod)
    name = text.rstrip(".").lower()
    suffix = "." + CLUSTER_DOMAIN
    if name.endswith(suffix):
        name = name[: -len(suffix)]
    parts = name.split(".")
    if len(parts) == 3 and parts[2] == "svc":
        parts = parts[:2]
    rr = "A" if family == 4 else "AAAA"
    if len(parts) in (1, 2):
        svc_ns = parts[1] if len(parts) == 2 else namespace
        svc = state.get("Service", svc_ns, parts[0])
        if isinstance(svc, Service):
            fqdn = f"{parts[0]}.{svc_ns}.svc.{CLUSTER_DOMAIN}"
            t = _service_target(svc, family, [])
            how = "" if fqdn == text.rstrip(".") else f"{text} (search list of namespace {namespace}) = "
            return Target(t.kind, t.ip, service=svc, dns_name=text,
                          notes=(f"DNS: {how}{fqdn} {rr} {t.ip} (Service {svc.namespace}/{svc.name})",))
        if len(parts) == 1:
            found = state.get("Pod", namespace, parts[0])
            if isinstance(found, Pod):
                return Target("pod", family_ip(found.pod_ips, family) or _no_family(found, family), pod=found)
    outside = (outside_names or {}).get(text.rstrip(".").lower())
    if outside:
        ip = family_ip(list(outside), family)
        if ip is None:
            raise TraceError(f"{text} has no IPv{family} address (it has: {', '.join(outside)})")
        return Target("ip", ip, dns_name=text,
                      notes=(f"DNS: {text.rstrip('.')} {rr} {ip} (outside the cluster domain: "
                             f"cluster DNS forwards it to the outside world's server)",))
    raise TraceError(f"DST {text!r}: no pod, Service or address of that name "
                     f"(forms: POD, NS/POD, SERVICE[.NS[.svc.{CLUSTER_DOMAIN}]], an IP)")


def _no_family(pod: Pod, family: int) -> str:
    raise TraceError(f"pod {pod.namespace}/{pod.name} has no IPv{family} address "
                     f"(its IPs: {', '.join(pod.pod_ips)})")
