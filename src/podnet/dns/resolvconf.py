"""The resolv.conf kubelet writes for a pod (dnsPolicy + dnsConfig). Pure.

Follows kubelet's `pkg/kubelet/network/dns/dns.go` (checklist §8): ClusterFirst uses the
cluster DNS IPs and the `<ns>.svc.<zone> svc.<zone> <zone>` search path with ndots:5;
hostNetwork pods fall back to Default unless the policy is ClusterFirstWithHostNet;
Default copies the node's file; None starts empty. dnsConfig is merged on top.
The lab kubelet calls `resolv_conf` and writes the result to /etc/netns/<pod-netns>/resolv.conf.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN = 253


class DNSConfigError(ValueError):
    """The pod's DNS settings cannot produce a usable resolv.conf."""


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in self.nameservers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def parse(text: str) -> ResolvConf:
    """Only nameserver, search (and the older domain) and options lines; the rest is dropped."""
    rc = ResolvConf()
    for line in text.splitlines():
        parts = line.split("#")[0].split(";")[0].split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            rc.nameservers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            rc.searches = parts[1:]  # the last search/domain line wins, as in glibc
        elif parts[0] == "options":
            rc.options.extend(parts[1:])
    return rc


def _dedup(items: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i in items:
        if i and i not in out:
            out.append(i)
    return out


def _fit_searches(searches: Sequence[str]) -> list[str]:
    out: list[str] = []
    chars = 0
    for s in _dedup([s.rstrip(".") if s != "." else s for s in searches]):
        if len(s) > MAX_DOMAIN:
            continue
        if len(out) >= MAX_SEARCHES or chars + len(s) + (1 if out else 0) > MAX_SEARCH_CHARS:
            break
        chars += len(s) + (1 if out else 0)
        out.append(s)
    return out


def _merge_options(base: Sequence[str], pod_opts: Sequence[str]) -> list[str]:
    """By option name; the pod's value wins; first appearance keeps its place."""
    order: list[str] = []
    values: dict[str, str] = {}
    for opt in list(base) + list(pod_opts):
        name = opt.split(":", 1)[0]
        if name not in values:
            order.append(name)
        values[name] = opt
    return [values[n] for n in order]


def _pod_options(dns_config: dict[str, Any]) -> list[str]:
    out = []
    for o in dns_config.get("options") or []:
        name = str(o.get("name") or "").strip()
        if not name:
            continue
        value = o.get("value")
        out.append(f"{name}:{value}" if value not in (None, "") else name)
    return out


def _policy(pod: Any, cluster_dns_ips: Sequence[str]) -> str:
    policy = pod.dns_policy or "ClusterFirst"
    if policy == "ClusterFirst" and pod.host_network:
        return "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns_ips:
        return "Default"  # kubelet also emits a warning event
    if policy not in ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"):
        raise DNSConfigError(f"pod {pod.namespace}/{pod.name}: spec.dnsPolicy {policy!r} is not one of "
                             "ClusterFirst, ClusterFirstWithHostNet, Default, None")
    return policy


def resolv_conf(pod: Any, cluster_dns_ips: Sequence[str], zone: str = "cluster.local",
                host_resolv_text: str | None = "") -> str:
    """`pod`: a podnet.api.objects.Pod. `host_resolv_text`: the node's resolv.conf content;
    None stands for kubelet's `--resolv-conf=""` (nameserver 127.0.0.1, search .)."""
    zone = zone.strip(".")
    policy = _policy(pod, cluster_dns_ips)
    if host_resolv_text is None:
        host = ResolvConf(["127.0.0.1"], ["."], [])
    else:
        host = parse(host_resolv_text)
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        rc = ResolvConf(list(cluster_dns_ips),
                        [f"{pod.namespace}.svc.{zone}", f"svc.{zone}", zone] +
                        [s for s in host.searches if s != "."],
                        ["ndots:5"])
    elif policy == "Default":
        rc = host
    else:
        rc = ResolvConf()
    cfg = pod.dns_config or {}
    rc.nameservers = _dedup(rc.nameservers + [str(x) for x in cfg.get("nameservers") or []])[:MAX_NAMESERVERS]
    rc.searches = _fit_searches(rc.searches + [str(x) for x in cfg.get("searches") or []])
    rc.options = _merge_options(rc.options, _pod_options(cfg))
    if policy == "None" and not rc.nameservers:
        raise DNSConfigError(f"pod {pod.namespace}/{pod.name}: dnsPolicy None needs "
                             "spec.dnsConfig.nameservers (at least one)")
    return rc.render()
