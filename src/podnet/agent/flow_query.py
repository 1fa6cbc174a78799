"""Flow records read back (issue 18 §2): the CLI's and the web view's side of the agents'
rings. Filters as `podnet flows` takes them, `--since`, the merge of every node's records
by time, the table's line, and the per-policy counts `describe networkpolicy` shows. Pure.
"""
from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from podnet.agent import flow_accounting
from podnet.agent.flows import VERDICTS, norm_ip  # noqa: F401 - VERDICTS: what --verdict takes


def policy_counts(records: Iterable[dict[str, Any]], namespace: str, policy: str) -> dict[str, int]:
    """How many of `records` the policy allowed ("allowed", and "rule N" per ingress/egress
    rule) and dropped as isolating the pod ("denied")."""
    out: collections.Counter[str] = collections.Counter()
    for r in records:
        for d in r.get("decisions", []):
            if d.get("namespace") != namespace:
                continue
            if d.get("policy") == policy:
                out["allowed"] += 1
                out[f"{d['direction']} rule {d['rule']}"] += 1
            elif policy in d.get("policies", ()):
                out["denied"] += 1
    return dict(out)


@dataclass(frozen=True)
class Filter:
    namespace: str | None = None  # None: every namespace
    pod: str = ""
    src: str = ""
    dst: str = ""
    port: int = 0
    verdict: str = ""
    policy: str = ""

    def match(self, r: dict[str, Any]) -> bool:
        ends = [r["source"], r["destination"], r.get("endpoint") or {}]
        pods = [e.get("pod", "") for e in ends]
        if self.namespace is not None:
            nss = {p.split("/")[0] for p in pods if p} | {str(r.get("service", "")).split("/")[0]}
            nss |= {d.get("namespace", "") for d in r.get("decisions", [])}
            if self.namespace not in nss:
                return False
        if self.pod and not any(_names(p, self.pod, self.namespace) for p in pods):
            return False
        if self.src and not _is(r["source"], self.src, self.namespace):
            return False
        if self.dst and not (_is(r["destination"], self.dst, self.namespace)
                             or _is(r.get("endpoint") or {}, self.dst, self.namespace)
                             or _svc(r, self.dst, self.namespace)):
            return False
        if self.port and self.port not in (r["destination"].get("port"), (r.get("endpoint") or {}).get("port")):
            return False
        if self.verdict and r["verdict"] != self.verdict:
            return False
        if self.policy and not any(self.policy in (d.get("policy"), *d.get("policies", ()))
                                   for d in r.get("decisions", [])):
            return False
        return True


def _names(full: str, want: str, ns: str | None) -> bool:
    return bool(full) and (full == want or (ns is not None and full == f"{ns}/{want}")
                           or ("/" not in want and full.split("/")[-1] == want))


def _is(end: dict[str, Any], want: str, ns: str | None) -> bool:
    return bool(end) and (end.get("ip") == norm_ip(want) or _names(end.get("pod", ""), want, ns))


def _svc(r: dict[str, Any], want: str, ns: str | None) -> bool:
    return _names(str(r.get("service", "")).split(":")[0], want, ns)


_DUR = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_since(s: str, now: float) -> float:
    """`5m`, `30s`, `2h`, `1d` (or seconds) before `now`."""
    m = _DUR.match(s.strip())
    if not m:
        raise ValueError(f"--since {s!r}: want a duration such as 30s, 5m, 2h")
    return now - float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def merge_by_time(streams: Iterable[Iterable[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Records of every node, oldest first (each node's stream is already in time order
    up to the join of its two sources, so each is sorted before the merge)."""
    import heapq
    keyed = [sorted(s, key=_order) for s in streams]
    return heapq.merge(*keyed, key=_order)


def _order(r: dict[str, Any]) -> tuple[float, str, int]:
    return (r["time"], r.get("node", ""), r.get("seq", 0))


def describe(r: dict[str, Any]) -> str:
    """What decided, in a few words, for the table."""
    parts = []
    for d in r.get("decisions", []):
        if d.get("policy") and not d.get("namespace"):  # a ClusterNetworkPolicy rule
            parts.append(f"{d['direction']} {d['reason']} ({d['policy']} rule {d['rule']})")
        elif d.get("policy"):
            parts.append(f"{d['direction']} {d['namespace']}/{d['policy']} rule {d['rule']}")
        elif d.get("policies"):
            parts.append(f"{d['direction']} isolated by {', '.join(d['policies'])}, no rule allowed it")
        else:
            parts.append(d["reason"])
    return "; ".join(parts) or "not isolated"


def table_line(r: dict[str, Any]) -> str:
    def end(e: dict[str, Any]) -> str:
        who = e.get("pod") or e["ip"]
        return f"{who}:{e['port']}" if e.get("port") else who
    ts = time.strftime("%H:%M:%S", time.localtime(r["time"])) + f".{int(r['time'] % 1 * 1000):03d}"
    dst = end(r["destination"])
    if r.get("service"):
        dst = f"{dst} (svc {r['service']}"
        dst += f" -> {end(r['endpoint'])})" if r.get("endpoint") else ")"
    if r.get("snat"):
        dst += f" (outside, SNAT {r['snat']})" if r["destination"].get("outside") else f" (SNAT {r['snat']})"
    done = f"; {flow_accounting.summary(r['finished'])}" if r.get("finished") else ""
    if r.get("staged"):
        done += f"; would be {r['staged']['wouldBe']} by staged policies ({r['staged']['cause']})"
    return f"{ts} {r['node']:<10} {r['protocol']:<5} {end(r['source'])} -> {dst} {r['verdict'].upper()}  {describe(r)}{done}"
