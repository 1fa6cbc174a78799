"""Hold the predicted path against what the kernel did. Pure: compares a `Trace` with an
`Observation` (nft traces of the real packet, per namespace) and the kernel's route
lookups; every difference is a line starting `MISMATCH: predicted X, kernel Y`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from podnet.trace.kernel import Observation
from podnet.calc.routes import VXLAN_PORT
from podnet.trace.model import Headers, Hop, Path, Trace
from podnet.trace.nftrace import PacketTrace

BUG = " — this is a podnet bug"
RouteGet = Callable[[str, str, "str | None", "str | None"], dict[str, Any]]
# (netns, address) -> what that namespace's kernel and BIRD say of the route to it:
# {"prefix": ..., "proto": "bird", "session": ..., "next_hop": ...} or {"error": ...}
BgpGet = Callable[[str, str], dict[str, Any]]


@dataclass(frozen=True)
class Check:
    ok: bool
    where: str
    what: str
    predicted: str
    kernel: str

    @property
    def line(self) -> str:
        if self.ok:
            return f"ok        {self.where}: {self.what}: {self.kernel}"
        return f"MISMATCH: {self.where}: {self.what}: predicted {self.predicted}, kernel {self.kernel}{BUG}"


def kernel_endpoint(t: Trace, obs: Observation) -> str | None:
    """The endpoint the kernel's DNAT chose on the source node (None: no DNAT seen)."""
    hops = t.request.hops
    at = next((i for i, h in enumerate(hops) if h.step("dnat")), None)
    if not t.endpoints or at is None:
        return None
    pt = _packet(obs, hops[at].netns, "request", _visit(hops, at))
    daddr = pt.oif and pt.last.get("daddr") if pt else None
    return daddr if daddr and any(e.ip == daddr for e in t.endpoints) else None


def _packet(obs: Observation, netns: str, direction: str, nth: int = 0,
            outer: Headers | None = None) -> PacketTrace | None:
    """The packet of the probe's flow in `netns`, on its `nth` visit there (a path may
    cross a node twice: a NodePort on one node, the endpoint on the other). `outer`: the
    packet is seen wrapped in VXLAN (the router between racks): the one with those outer
    addresses (kernel.py marks VXLAN packets by the probe's port inside)."""
    if outer is not None:
        seen = [pt for pt in obs.traces.get(netns, []) if pt.first.get("dport") == str(VXLAN_PORT)
                and pt.first.get("saddr") == outer.l3.src and pt.first.get("daddr") == outer.l3.dst]
    else:
        key = "sport" if direction == "request" else "dport"
        seen = [pt for pt in obs.traces.get(netns, []) if pt.first.get(key) == str(obs.sport)]
    return seen[nth] if nth < len(seen) else None


def _outer(hop: Hop) -> Headers | None:
    """The outer headers when the router forwards a VXLAN packet (its hop routes the outer one)."""
    return hop.headers.outer if hop.kind == "router" and hop.headers is not None else None


def _visit(hops: tuple[Hop, ...], i: int) -> int:
    """How many times the path was in hop i's namespace before (and watched there)."""
    return sum(1 for h in hops[:i] if h.netns == hops[i].netns and h.iif is not None)


def expected_outcome(t: Trace) -> set[str]:
    if t.request.outcome == "rejected":
        return {"refused"}
    if t.request.outcome != "delivered" or t.reply is None or t.reply.outcome != "delivered":
        return {"timeout", "unreachable"}
    return {"connected", "refused"}  # refused: reached, but nothing listens


def _route_checks(p: Path, route_get: RouteGet) -> list[Check]:
    out = []
    for i, hop in enumerate(p.hops):
        if hop.kind == "underlay":
            continue
        inner = [s for s in hop.steps if s.kind == "route" and "dst" in s.data and not s.data.get("outer")]
        outer = [s for s in hop.steps if s.kind == "route" and s.data.get("outer")]
        for st in inner[-1:] + outer:
            d = st.data
            # forwarded packets are looked up as they arrived (from SRC iif IIF); the first
            # hop's packet, and a node's own VXLAN packet, leave from the namespace itself
            local = i == 0 or (d.get("outer") and hop.kind == "node")
            src, iif = (None, None) if local else (d.get("src"), hop.iif)
            if d.get("outer") and hop.kind == "router":
                src, iif = d.get("src"), hop.iif
            got = route_get(hop.netns, d["dst"], src, iif)
            where = f"{p.direction} {hop.where}"
            want_dev = d.get("dev") or "(none)"
            if "error" in got:
                kernel = f"no route ({got['error']})"
                ok = want_dev == "(none)"
            else:
                kdev = "lo" if got.get("type") == "local" else str(got.get("dev"))
                kernel = f"dev {kdev}" + (f" via {got['gateway']}" if got.get("gateway") else "")
                ok = kdev == want_dev and (got.get("gateway") or None) == (d.get("gateway") or None)
            pred = "no route" if want_dev == "(none)" else \
                f"dev {want_dev}" + (f" via {d['gateway']}" if d.get("gateway") else "")
            what = f"ip route get {d['dst']}" + (" (the VXLAN outer packet)" if d.get("outer") else "")
            out.append(Check(ok, where, what, pred, kernel))
    return out


def _bgp_checks(p: Path, bgp_get: BgpGet) -> list[Check]:
    """Every route predicted as BIRD's: the kernel's matching route is `proto bird` for
    that prefix, and BIRD says it learned it over the predicted session with the
    announcing node as BGP next hop."""
    out = []
    for hop in p.hops:
        for st in hop.steps:
            b = st.data.get("bgp") if st.kind == "route" else None
            if not b:
                continue
            where = f"{p.direction} {hop.where}"
            got = bgp_get(hop.netns, st.data["dst"])
            if "error" in got:
                out.append(Check(False, where, f"BGP route {b['prefix']}", "learned over BGP", got["error"]))
                continue
            out.append(Check(got.get("proto") == "bird" and got.get("prefix") == b["prefix"], where,
                             f"kernel route for {st.data['dst']}", f"{b['prefix']} proto bird",
                             f"{got.get('prefix')} proto {got.get('proto')}"))
            path = b.get("as_path", "")
            pred = f"next hop {b['next_hop']}" + (f" over session {b['session']}" if b["session"] else "") \
                + f", AS path {path or '(empty: iBGP)'}"
            ok = got.get("next_hop") == b["next_hop"] and (not b["session"] or got.get("session") == b["session"]) \
                and got.get("as_path", "") == path
            kern = f"next hop {got.get('next_hop')} over session {got.get('session')}, " \
                f"AS path {got.get('as_path') or '(empty: iBGP)'}"
            out.append(Check(ok, where, f"BIRD's route {b['prefix']} (announced by {b['owner']})", pred, kern))
    return out


def _hop_checks(p: Path, i: int, hop: Hop, obs: Observation) -> list[Check]:
    where = f"{p.direction} {hop.where}"
    pt = _packet(obs, hop.netns, p.direction, _visit(p.hops, i), _outer(hop))
    last = i == len(p.hops) - 1
    if pt is None:
        return [Check(False, where, "packet seen", "the packet passes here", "never saw it")]
    out = [Check(True, where, "packet seen", "", f"in {pt.first.get('iif', '?')}")]
    dropped = last and p.outcome in ("dropped", "rejected", "unreachable") and hop.kind != "outside"
    if hop.kind in ("node", "router") and not dropped and hop.oif:
        out.append(Check(pt.oif == hop.oif, where, "leaves by", hop.oif, str(pt.oif)))
    if hop.kind in ("node",) and dropped:
        out.append(Check(pt.dropped, where, "verdict", "drop", "drop" if pt.dropped else "not dropped"))
    for s in hop.steps:
        if s.kind == "dnat":
            to = s.data["to"].rsplit(":", 1)[0]
            got = pt.last.get("daddr", "?")
            out.append(Check(got == to, where, "DNAT to", to, got))
        if s.kind == "policy" and s.data.get("direction") in ("egress", "ingress"):
            d = s.data
            verdict: tuple[str, str] = ("allowed", d["rule"]) if d["isolated"] and d["allowed"] else \
                ("open", "") if not d["isolated"] else ("denied", "")
            seen = pt.policy(d["direction"])
            ok = seen[0] == verdict[0] and (verdict[0] != "allowed" or seen[1] == verdict[1])
            out.append(Check(ok, where, f"policy {d['direction']}", " ".join(verdict).strip(),
                             " ".join(str(x) for x in seen).strip()))
        if s.kind == "policy" and s.data.get("direction") == "reply":
            state = pt.policy("egress")[0]
            out.append(Check(state in ("established", "unseen"), where, "policy", "established", str(state)))
    if hop.kind == "node" and not dropped:
        want_snat = any(s.kind == "snat" for s in hop.steps)
        masq = pt.masquerade
        out.append(Check(bool(masq) == want_snat, where, "SNAT",
                         "masquerade" if want_snat else "none", f"masquerade ({masq})" if masq else "none"))
    before = p.hops[i - 1].headers if i > 0 else None
    if _outer(hop) is not None and before is not None and before.outer is not None:
        o = before.outer  # the wrapped packet as it reaches the router
        f = pt.first
        l3 = f"{o.l3.src} -> {o.l3.dst} ttl {o.l3.ttl} udp dport {o.l4.dport}"
        got3 = f"{f.get('saddr', '?')} -> {f.get('daddr', '?')} ttl {f.get('ttl', '?')} udp dport {f.get('dport', '?')}"
        l2, got2 = f"{o.l2.src} -> {o.l2.dst}", f"{f.get('ether saddr', '?')} -> {f.get('ether daddr', '?')}"
        known = not any(m.startswith("<") for m in (o.l2.src, o.l2.dst))  # MACs read from the lab
        out.append(Check(got3 == l3 and (got2 == l2 or not known), where, "VXLAN outer headers arriving",
                         f"{l2} {l3}" if known else l3, f"{got2} {got3}" if known else got3))
    if hop.headers is not None and hop.kind == "outside":
        out.append(Check(pt.first.get("saddr") == hop.headers.l3.src, where, "source address seen",
                         hop.headers.l3.src, pt.first.get("saddr", "?")))
    return out


def _l2_checks(p: Path, obs: Observation) -> list[Check]:
    out = []
    for i, (prev, hop) in enumerate(zip(p.hops, p.hops[1:]), 1):
        if hop.kind != "node" or prev.headers is None:
            continue
        pt = _packet(obs, hop.netns, p.direction, _visit(p.hops, i))
        if pt is None or "ether saddr" not in pt.first:
            continue
        # our chain sees the packet on the device it entered by: the inner frame after VXLAN
        want = (prev.headers.l2.src, prev.headers.l2.dst)
        if any(m.startswith("<") for m in want):
            continue
        got = (pt.first["ether saddr"], pt.first["ether daddr"])
        out.append(Check(got == want, f"{p.direction} {hop.where}", "L2 arriving",
                         f"{want[0]} -> {want[1]}", f"{got[0]} -> {got[1]}"))
    return out


def compare(t: Trace, obs: Observation, route_get: RouteGet, watched: set[str],
            bgp_get: BgpGet | None = None) -> list[Check]:
    exp = expected_outcome(t)
    out = [Check(obs.outcome in exp, "probe", f"{t.proto} from {t.src} port {obs.sport}",
                 " or ".join(sorted(exp)), obs.outcome)]
    paths = [t.request] + ([t.reply] if t.reply else [])
    if obs.outcome == "refused" and t.proto != "TCP" and t.reply is not None:
        # nothing listened: the answer was an ICMP error, which our marking rule does not match
        out.append(Check(True, "reply", "not followed", "", "the answer was an ICMP port unreachable"))
        paths = paths[:1]
    for p in paths:
        out += _route_checks(p, route_get)
        if bgp_get is not None:
            out += _bgp_checks(p, bgp_get)
        on_path = set()
        for i, hop in enumerate(p.hops):
            if hop.netns in watched and hop.iif is not None:
                on_path.add(hop.netns)
                out += _hop_checks(p, i, hop, obs)
        out += _l2_checks(p, obs)
        for ns in sorted(watched - on_path - {h.netns for h in p.hops}):
            if _packet(obs, ns, p.direction) is not None:
                out.append(Check(False, f"{p.direction} netns {ns}", "packet seen",
                                 "the path does not pass here", "saw it"))
    return out


def dns_check(name: str, family: int, predicted: str, answers: list[str] | str) -> Check:
    rr = "A" if family == 4 else "AAAA"
    if isinstance(answers, str):
        return Check(False, "DNS in the source pod", f"{name} {rr}", predicted, f"no answer ({answers})")
    got = ", ".join(answers) or "no address"
    return Check(predicted in answers, "DNS in the source pod", f"{name} {rr}", predicted, got)


def summary(checks: list[Check]) -> dict[str, Any]:
    bad = [c for c in checks if not c.ok]
    return {"ok": not bad, "mismatches": len(bad), "checks": [asdict(c) | {"line": c.line} for c in checks]}
