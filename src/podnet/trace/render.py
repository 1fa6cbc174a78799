"""A trace as text for a terminal (plain, aligned, no colour needed) or as JSON. Pure."""
from __future__ import annotations

import json
from typing import Any

from podnet.trace.model import Headers, Hop, L4, Path, Trace

FAMILY = {4: "IPv4", 6: "IPv6"}


def _port(p: int | None, what: str = "(ephemeral)") -> str:
    return what if p is None else str(p)


def _l4(l4: L4, outer: bool = False) -> str:
    return f"{l4.proto:<9} sport {_port(l4.sport, '(flow hash)' if outer else '(ephemeral)')}  dport {_port(l4.dport)}"


def headers_lines(h: Headers, indent: str) -> list[str]:
    out = []
    if h.outer is not None:
        o = h.outer
        out += [f"{indent}outer L2  Ethernet  {o.l2.src} -> {o.l2.dst}",
                f"{indent}outer L3  {FAMILY[o.l3.family]:<9} {o.l3.src} -> {o.l3.dst}  ttl {o.l3.ttl}",
                f"{indent}outer L4  {_l4(o.l4, True)}  VXLAN VNI {h.vni}"]
        pre = "inner "
    else:
        pre = ""
    ttl = "ttl" if h.l3.family == 4 else "hop limit"
    out += [f"{indent}{pre}L2  Ethernet  {h.l2.src} -> {h.l2.dst}",
            f"{indent}{pre}L3  {FAMILY[h.l3.family]:<9} {h.l3.src} -> {h.l3.dst}  {ttl} {h.l3.ttl}",
            f"{indent}{pre}L4  {_l4(h.l4)}"]
    return out


def hop_lines(i: int, hop: Hop) -> list[str]:
    ifs = []
    if hop.iif:
        ifs.append(f"in {hop.iif}")
    if hop.oif:
        ifs.append(f"out {hop.oif}")
    out = [f"{i:2d}. {hop.where}  [netns {hop.netns}]" + (f"  {', '.join(ifs)}" if ifs else "")]
    for s in hop.steps:
        out.append(f"      {s.text}")
    if hop.headers is not None:
        out.append("      headers " + ("as it leaves:" if hop.oif else "as it arrives:"))
        out += headers_lines(hop.headers, "        ")
    return out


def summary(p: Path) -> str:
    marks = {"dnat": "DNAT", "undnat": "un-DNAT", "snat": "SNAT", "unsnat": "un-SNAT",
             "encap": "VXLAN", "decap": "de-VXLAN"}
    parts = []
    for hop in p.hops:
        tags = [marks[s.kind] for s in hop.steps if s.kind in marks]
        parts.append(hop.where.split(" (")[0] + (f" [{', '.join(tags)}]" if tags else ""))
    return " -> ".join(parts)


def path_lines(p: Path) -> list[str]:
    out = [f"{p.direction.upper()}  {summary(p)}"]
    for i, hop in enumerate(p.hops, 1):
        out += hop_lines(i, hop)
    why = f": {p.why}" if p.why else ""
    out.append(f"  => {p.outcome.upper()}{why}")
    return out


def text(t: Trace, confirmation: list[str] | None = None) -> str:
    out = [f"trace {t.src} -> {t.target} {t.port}/{t.proto} {FAMILY[t.family]}"]
    out += [f"  {n}" for n in t.notes]
    if t.service:
        out.append(f"  Service {t.service}: {len(t.endpoints)} endpoint(s) the proxy may choose"
                   + (":" if t.endpoints else " (none on this node: dropped)"
                      if t.request.outcome == "dropped" else " (none ready)"))
        for e in t.endpoints:
            mark = "*" if t.chosen == e else " "
            out.append(f"   {mark} {e.ip}:{e.port}  {e.pod or '(not a pod)'}  node {e.node or '?'}")
        if t.chosen:
            out.append("    (* the path below follows this one)")
    out.append(f"  NetworkPolicy: {t.verdict.upper()} ({t.verdict_reason})")
    out.append("")
    out += path_lines(t.request)
    if t.reply is not None:
        out.append("")
        out += path_lines(t.reply)
    if confirmation is not None:
        out.append("")
        out.append("KERNEL CONFIRMATION")
        out += [f"  {c}" for c in confirmation]
    return "\n".join(out) + "\n"


def to_json(t: Trace, confirmation: dict[str, Any] | None = None) -> str:
    d = t.to_json()
    if confirmation is not None:
        d["confirmation"] = confirmation
    return json.dumps(d, indent=1, sort_keys=True) + "\n"
