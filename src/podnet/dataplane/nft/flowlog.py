"""The ids podnet's rules put in their nflog prefixes (issue 18 §1), and the log statement. Pure.

A rule that decides a verdict carries `log group GROUP prefix "<id>"`; the agent reads the
kernel's log messages (through ulogd, dataplane/flowlog.py) and maps the id back to what
decided. Ids are short (the kernel keeps at most 127 bytes of a prefix, and policy names
are up to 253) and deterministic, so the renderer and the agent compute them apart:
- `pnA` + hash of (namespace, policy, direction, rule index): a rule that allowed a new
  connection;
- `pnC` + hash of (policy, direction, rule index): a ClusterNetworkPolicy rule that
  accepted or denied a new connection (Pass rules decide nothing and log nothing);
- `pnI` + hash of (namespace, pod, direction): the pod's chain ended, it is isolated and no
  rule of the policies isolating it allowed the packet;
- the fixed ids below: spoofed source (forwarded or to the node), refused by host
  protection, rejected by the service proxy for want of endpoints.
"""
from __future__ import annotations

import hashlib

GROUP = 7  # the nflog group of every podnet rule; the node's ulogd listens on it

SPOOFED = "pnSpoofed"
SPOOFED_INPUT = "pnSpoofedInput"
HOST_REFUSED = "pnHostRefused"
NO_ENDPOINTS = "pnNoEndpoints"
FIXED = {SPOOFED: ("dropped", "spoofed"), SPOOFED_INPUT: ("dropped", "spoofed"),
         HOST_REFUSED: ("rejected", "host protection"),
         NO_ENDPOINTS: ("rejected", "no endpoints")}


_H: dict[tuple[object, ...], str] = {}


def _h(*parts: object) -> str:
    hit = _H.get(parts)  # memoised: renders ask again for every unchanged rule of a changed chain
    if hit is None:
        if len(_H) > 200_000:
            _H.clear()
        hit = _H[parts] = hashlib.sha1("\0".join(str(p) for p in parts).encode()).hexdigest()[:16]
    return hit


def allow_id(namespace: str, policy: str, direction: str, index: int) -> str:
    return "pnA" + _h(namespace, policy, direction, index)


def cluster_id(policy: str, direction: str, index: int) -> str:
    """A ClusterNetworkPolicy rule that accepted or denied a new connection."""
    return "pnC" + _h(policy, direction, index)


def isolated_id(namespace: str, pod: str, direction: str) -> str:
    return "pnI" + _h(namespace, pod, direction)


def log(fid: str) -> str:
    """The statement, put before the verdict (and after the rule's counter)."""
    return f'log group {GROUP} prefix "{fid}"'
