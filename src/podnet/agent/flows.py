"""Flow records (issue 18): built from the kernel's own log and conntrack events, kept in a
bounded ring. Pure: no I/O (the reading and serving is flow_server.py; reading them back,
filtering and merging, flow_query.py; a finished connection's counters, flow_accounting.py).

Two sources, both read through ulogd (dataplane/ulogd.py) as JSON objects:
- nflog messages of podnet's rules (`oob.prefix` is an id of dataplane/nft/flowlog.py):
  drops (isolated pod, spoofed), rejects (no endpoints, host protection) and the rule
  that allowed a new connection. Seen in the forward hook, after DNAT: the destination is
  the endpoint; rejects by the service proxy happen before DNAT: the destination is the VIP.
- conntrack NEW events (`ct.event` 1): every connection the node forwarded, with the
  original destination (the VIP) and the reply's source (the endpoint chosen) and
  destination (the SNAT address when NAT outgoing masqueraded it).
Both of one connection land in one record, joined on (protocol, source, source port,
destination after DNAT, its port), whichever comes first.
"""
from __future__ import annotations

import collections
import functools
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from podnet.dataplane.nft import flowlog

PROTOS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}
VERDICTS = ("forwarded", "dropped", "rejected")


@dataclass(frozen=True)
class Cause:
    """What an nflog id stands for."""
    verdict: str  # forwarded | dropped | rejected
    reason: str  # "policy rule" | "isolated, no rule allowed it" | "spoofed" | ...
    namespace: str = ""
    policy: str = ""  # the allowing policy
    direction: str = ""  # ingress | egress
    index: int = -1  # rule index in that direction
    pod: str = ""  # the isolated pod
    policies: tuple[str, ...] = ()  # the policies isolating it

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"verdict": self.verdict, "reason": self.reason}
        for k in ("namespace", "policy", "direction", "pod"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.index >= 0:
            d["rule"] = self.index
        if self.policies:
            d["policies"] = list(self.policies)
        return d


def causes_of(chains: Iterable[tuple[str, str, str, int]],
              isolated: Iterable[tuple[str, str, str, tuple[str, ...]]],
              cluster: Iterable[tuple[str, str, str, int, str]] = ()) -> dict[str, Cause]:
    """The id map: `chains` are (namespace, policy, direction, rule index) of every rendered
    rule, `isolated` (namespace, pod, direction, isolating policies) of every pod chain,
    `cluster` (tier, ClusterNetworkPolicy, direction, rule index, action) of every cluster
    rule that accepts or denies."""
    out: dict[str, Cause] = {fid: Cause(v, r) for fid, (v, r) in flowlog.FIXED.items()}
    for ns, pol, d, i in chains:
        out[flowlog.allow_id(ns, pol, d, i)] = Cause("forwarded", "policy rule", ns, pol, d, i)
    for tier, pol, d, i, action in cluster:
        out[flowlog.cluster_id(pol, d, i)] = Cause(
            "forwarded" if action == "Accept" else "dropped", f"{tier} tier ClusterNetworkPolicy rule: {action}",
            "", pol, d, i)
    for ns, pod, d, pols in isolated:
        out[flowlog.isolated_id(ns, pod, d)] = Cause("dropped", "isolated, no rule allowed it",
                                                     ns, direction=d, pod=pod, policies=pols)
    return out


@dataclass
class Names:
    """Who is behind an address, from the agent's cluster state."""
    pods: dict[str, str] = field(default_factory=dict)  # ip -> ns/name
    services: dict[tuple[str, str, int], str] = field(default_factory=dict)  # (vip, PROTO, port) -> ns/name:port-name
    vips: dict[str, str] = field(default_factory=dict)  # vip -> ns/name

    def pod(self, ip: str) -> str:
        return self.pods.get(norm_ip(ip), "")

    def service(self, ip: str, proto: str, port: int) -> str:
        ip = norm_ip(ip)
        return self.services.get((ip, proto, port)) or self.vips.get(ip, "")


def names_of(pods: Iterable[tuple[str, str, list[str]]],
             services: Iterable[tuple[str, str, list[str], list[tuple[str, int, str]]]]) -> Names:
    """`pods`: (namespace, name, ips); `services`: (namespace, name, cluster ips, [(PROTO, port, port name)])."""
    n = Names()
    for ns, name, ips in pods:
        for ip in ips:
            n.pods[norm_ip(ip)] = f"{ns}/{name}"
    for ns, name, vips, ports in services:
        for vip in vips:
            n.vips[norm_ip(vip)] = f"{ns}/{name}"
            for proto, port, pname in ports:
                n.services[(norm_ip(vip), proto.upper(), port)] = f"{ns}/{name}" + (f":{pname}" if pname else "")
    return n


@functools.lru_cache(maxsize=65536)
def norm_ip(ip: str) -> str:
    """An address as Python writes it (IPv6 compressed, RFC 5952); other text as it is.
    inet_pton/ntop and a cache: every event normalises several addresses, and
    `ipaddress` made this most of a flow's cost."""
    af = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        out = socket.inet_ntop(af, socket.inet_pton(af, ip))
    except (OSError, ValueError, TypeError):
        return ip
    if af == socket.AF_INET6 and "." in out:  # glibc writes ::ffff:1.2.3.4, Python hex
        return str(ipaddress.ip_address(ip))
    return out


def _endpoint(ip: str, port: int | None) -> dict[str, Any]:
    d: dict[str, Any] = {"ip": norm_ip(ip)}
    if port:
        d["port"] = port
    return d


def record_from_log(ev: dict[str, Any], node: str, causes: dict[str, Cause], names: Names) -> dict[str, Any] | None:
    """A flow record from one nflog message of a podnet rule; None for another prefix."""
    fid = str(ev.get("oob.prefix") or "")
    cause = causes.get(fid)
    if cause is None and not fid.startswith("pn"):
        return None
    proto = PROTOS.get(int(ev.get("ip.protocol") or ev.get("ip6.nexthdr") or 0), str(ev.get("ip.protocol")))
    src, dst = str(ev.get("src_ip") or ""), str(ev.get("dest_ip") or "")
    t = float(ev.get("oob.time.sec") or time.time()) + float(ev.get("oob.time.usec") or 0) / 1e6
    rec = _base(t, node, proto, src, ev.get("src_port"), dst, ev.get("dest_port"), names)
    decided = cause.as_dict() if cause else {"verdict": "dropped", "reason": f"unknown rule id {fid}"}
    rec["verdict"] = decided["verdict"]
    rec["decisions"] = [decided]
    rec["sources"] = ["log"]
    if decided.get("direction"):
        rec["direction"] = decided["direction"]
    if rec["verdict"] == "rejected" and cause is not None and cause.reason == "no endpoints":
        svc = names.service(dst, proto, int(ev.get("dest_port") or 0))
        if svc:
            rec["service"] = svc
    if cause is not None and ("tcp.syn" in ev):
        rec["tcpFlags"] = [f for f in ("syn", "ack", "fin", "rst", "psh") if ev.get(f"tcp.{f}")]
        if ev.get("tcp.syn") and "tcp.seq" in ev:
            rec["synSeq"] = ev["tcp.seq"]  # a retransmitted SYN carries the same
    return rec


def record_from_ct(ev: dict[str, Any], node: str, names: Names) -> dict[str, Any] | None:
    """A forwarded flow from a conntrack NEW event; None when neither end is a pod or Service."""
    if int(ev.get("ct.event") or 0) != 1:
        return None
    proto = PROTOS.get(int(ev.get("orig.ip.protocol") or 0), str(ev.get("orig.ip.protocol")))
    src, dst = str(ev.get("src_ip") or ""), str(ev.get("dest_ip") or "")
    sport, dport = ev.get("orig.l4.sport"), ev.get("orig.l4.dport")
    ep, ep_port = str(ev.get("reply.ip.saddr.str") or dst), ev.get("reply.l4.sport") or dport
    snat = str(ev.get("reply.ip.daddr.str") or src)
    if not (names.pod(src) or names.pod(dst) or names.pod(ep) or names.service(dst, proto, int(dport or 0))):
        return None
    t = float(ev.get("flow.start.sec") or time.time()) + float(ev.get("flow.start.usec") or 0) / 1e6
    rec = _base(t, node, proto, src, sport, dst, dport, names)
    rec["verdict"] = "forwarded"
    rec["sources"] = ["conntrack"]
    rec["decisions"] = []
    if norm_ip(ep) != norm_ip(dst) or (ep_port and ep_port != dport):
        rec["service"] = names.service(dst, proto, int(dport or 0)) or "?"
        rec["endpoint"] = _endpoint(ep, ep_port)
        if names.pod(ep):
            rec["endpoint"]["pod"] = names.pod(ep)
    if norm_ip(snat) != norm_ip(src):
        rec["snat"] = norm_ip(snat)
        if not names.pod(dst) and not names.pod(ep):
            rec["destination"]["outside"] = True
    if ev.get("ct.id"):
        rec["ctId"] = ev["ct.id"]
    return rec


def _base(t: float, node: str, proto: str, src: str, sport: Any, dst: str, dport: Any, names: Names) -> dict[str, Any]:
    s, d = _endpoint(src, int(sport or 0)), _endpoint(dst, int(dport or 0))
    if names.pod(src):
        s["pod"] = names.pod(src)
    if names.pod(dst):
        d["pod"] = names.pod(dst)
    return {"time": round(t, 6), "node": node, "protocol": proto, "source": s, "destination": d}


def join_key(rec: dict[str, Any]) -> tuple[Any, ...]:
    """(protocol, source, sport, destination after DNAT, its port): one connection."""
    dst = rec.get("endpoint") or rec["destination"]
    return (rec["protocol"], rec["source"]["ip"], rec["source"].get("port", 0), dst["ip"], dst.get("port", 0))


def joins(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether `new` is more of `old`'s connection: the other source of it, the log of the
    same SYN again (a retransmission: same sequence number), or the log of a packet dropped
    or rejected again. A second conntrack event, or another allowed SYN, is a new connection
    that reused the addresses and ports."""
    src = new.get("sources", [])
    if not set(src) & set(old.get("sources", [])):
        return True
    if "synSeq" in new and new["synSeq"] == old.get("synSeq"):
        return True  # the same SYN again: a retransmission
    return src == ["log"] and new["verdict"] != "forwarded" and old["verdict"] == new["verdict"]


def merge_into(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A record of the other source of the same connection: decisions add up, a drop wins."""
    if "endpoint" in new and "endpoint" not in old:
        old["destination"] = new["destination"]  # the log saw the endpoint, conntrack the VIP
    for k in ("service", "endpoint", "snat", "ctId", "direction", "tcpFlags", "synSeq"):
        if k in new and k not in old:
            old[k] = new[k]
    if new.get("destination", {}).get("outside"):
        old["destination"]["outside"] = True
    old["decisions"] = old.get("decisions", []) + [d for d in new.get("decisions", []) if d not in old.get("decisions", [])]
    if new["verdict"] != "forwarded":
        old["verdict"] = new["verdict"]
    old["time"] = min(old["time"], new["time"])
    old["sources"] = sorted(set(old.get("sources", [])) | set(new.get("sources", [])))


class FlowRing:
    """The last `cap` records. A record overwritten before anyone read it counts as lost,
    as do events the reader had no room for (`note_lost`), so a flood shows how much."""

    def __init__(self, cap: int = 4096, join_window: float = 2.0):
        self.cap = cap
        self.ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=cap)
        self.seq = 0  # the order of what followers see: records added, and records finished
        self.added = 0  # records ever added
        self.lost = 0
        self.overruns = 0  # times the kernel's queue to ulogd overflowed (records never seen)
        self.join_window = join_window
        self._recent: collections.OrderedDict[tuple[Any, ...], dict[str, Any]] = collections.OrderedDict()
        self._by_ct: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()  # open connections
        self.finished = 0
        self.by_verdict: collections.Counter[str] = collections.Counter()
        self.by_policy: collections.Counter[tuple[str, str, str]] = collections.Counter()  # (ns/policy, direction, verdict)

    def add(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Store `rec`, or fold it into the record of the same connection seen just before."""
        key = join_key(rec)
        old = self._recent.get(key)
        if old is not None and abs(old["time"] - rec["time"]) <= self.join_window and joins(old, rec):
            before = old["verdict"]
            merge_into(old, rec)
            self._count(rec, old["verdict"] if old["verdict"] != before else None)
            self._index_ct(old)
            return old
        self.seq += 1
        self.added += 1
        rec["seq"] = self.seq
        if len(self.ring) == self.cap:
            self.lost += 1
        self.ring.append(rec)
        self._recent[key] = rec
        while len(self._recent) > self.cap:
            self._recent.popitem(last=False)
        self.by_verdict[rec["verdict"]] += 1
        self._count(rec, None)
        self._index_ct(rec)
        return rec

    def _index_ct(self, rec: dict[str, Any]) -> None:
        if rec.get("ctId") and "finished" not in rec:
            self._by_ct[int(rec["ctId"])] = rec
            while len(self._by_ct) > self.cap:
                self._by_ct.popitem(last=False)

    def finish(self, ct_id: int, fin: dict[str, Any]) -> dict[str, Any] | None:
        """The connection's counters, from its DESTROY event, into its record, which comes
        again (a new seq) to whoever follows; None when no record has that conntrack id."""
        rec = self._by_ct.pop(ct_id, None)
        if rec is None:
            return None
        rec["finished"] = fin
        self.seq += 1
        rec["seq"] = self.seq
        self.finished += 1
        return rec

    def _count(self, rec: dict[str, Any], changed: str | None) -> None:
        if changed:
            self.by_verdict[changed] += 1
        for d in rec.get("decisions", []):
            ns = d.get("namespace") or ""  # none: a ClusterNetworkPolicy, counted by its name
            for p in ([d["policy"]] if d.get("policy") else []) + list(d.get("policies", ())):
                self.by_policy[(f"{ns}/{p}" if ns else p, d.get("direction", ""), d["verdict"])] += 1

    def note_lost(self, n: int = 1) -> None:
        self.lost += n

    def since(self, t: float = 0.0, after_seq: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.ring if r["time"] >= t and r["seq"] > after_seq]

    def stats(self) -> dict[str, Any]:
        return {"cap": self.cap, "stored": len(self.ring), "seen": self.added, "lost": self.lost,
                "overruns": self.overruns, "finished": self.finished}
