"""Finished connections (issue 18 §1): packets and bytes each way, and how long it lasted.

The kernel counts them per conntrack entry when `net.netfilter.nf_conntrack_acct` is on,
and stamps start and end with `nf_conntrack_timestamp`; the agent turns both on in its
node's namespace (`enable`). The counters reach userspace only in the entry's DESTROY
event (ctnetlink sends them with no other event), so a connection is "finished" when
conntrack forgets it: for TCP after TIME_WAIT (120 s by default), for UDP when idle (30 s,
120 s once it saw replies), or at once when the entry is deleted (`conntrack -D`, a
Service's endpoint going away). The duration is the entry's life, so it includes that wait.
"""
from __future__ import annotations

from typing import Any

ENABLE = {"net.netfilter.nf_conntrack_acct": 1, "net.netfilter.nf_conntrack_timestamp": 1}
DESTROY = 4  # ulogd's ct.event of a DESTROY (NEW is 1)


def enable() -> None:
    """Accounting and timestamps on, in the calling thread's network namespace (the node's)."""
    from podnet.dataplane.net.sysctl import write_sysctls
    write_sysctls(None, ENABLE)


def ending(ev: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """(conntrack id, what the connection carried) of a DESTROY event; None for others.
    `sent` is the direction the connection was opened in, `received` the replies; bytes
    are whole IP packets as the kernel counts them."""
    if int(ev.get("ct.event") or 0) != DESTROY or not ev.get("ct.id"):
        return None

    def at(which: str) -> float | None:
        sec = ev.get(f"flow.{which}.sec")
        return None if sec is None else float(sec) + float(ev.get(f"flow.{which}.usec") or 0) / 1e6
    start, end = at("start"), at("end")
    fin: dict[str, Any] = {
        "packets": {"sent": int(ev.get("orig.raw.pktcount") or 0), "received": int(ev.get("reply.raw.pktcount") or 0)},
        "bytes": {"sent": int(ev.get("orig.raw.pktlen") or 0), "received": int(ev.get("reply.raw.pktlen") or 0)},
    }
    if end is not None:
        fin["ended"] = round(end, 6)
        if start is not None:
            fin["duration"] = round(max(end - start, 0.0), 6)
    return int(ev["ct.id"]), fin


def summary(fin: dict[str, Any]) -> str:
    """For the table: `ended after 1.234s, 5/5 packets, 318/418 bytes` (sent/received)."""
    dur = f" after {fin['duration']:.3f}s" if "duration" in fin else ""
    p, b = fin["packets"], fin["bytes"]
    return f"ended{dur}, {p['sent']}/{p['received']} packets, {b['sent']}/{b['received']} bytes"
