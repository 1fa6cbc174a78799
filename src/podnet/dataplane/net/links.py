"""Links in a network namespace through iproute2: batched, idempotent verbs.

`IpBatch` collects `ip` commands and runs them as one `ip -batch -` process (one fork
for many changes, which is what makes building a lab take a second and not ten).
`netns=None` is the current namespace: the agent runs inside its node's netns; the lab
builder always names a lab namespace.
"""
from __future__ import annotations

import json
from typing import Any

from podnet.dataplane.net.netns import CommandError, run

NETNS_DIRS = ("/var/run/netns/", "/run/netns/")


def ip_argv(netns: str | None) -> list[str]:
    """`ip` in namespace `netns`: a name (under /var/run/netns), a path (a CNI_NETNS, which
    may also be /proc/<pid>/ns/net), or None (this namespace)."""
    if not netns:
        return ["ip"]
    if "/" not in netns:
        return ["ip", "-n", netns]
    for d in NETNS_DIRS:
        if netns.startswith(d) and "/" not in netns[len(d):]:
            return ["ip", "-n", netns[len(d):]]
    return ["nsenter", f"--net={netns}", "ip"]


class IpBatch:
    """`ip [-n NS] [-force] -batch -`: every line one command, applied in order. `netns` as
    `ip_argv` takes it."""

    def __init__(self, netns: str | None = None, tool: str = "ip"):
        self.netns = netns
        self.tool = tool
        self.lines: list[str] = []

    def add(self, line: str) -> "IpBatch":
        self.lines.append(line)
        return self

    def __len__(self) -> int:
        return len(self.lines)

    def run(self, force: bool = False) -> None:
        """Raise CommandError on the first failure (force=False), or after trying every
        line (force=True: deletes of things already gone must not stop the rest)."""
        if not self.lines:
            return
        argv = ip_argv(self.netns) if self.tool == "ip" else [self.tool]
        argv += (["-force"] if force else []) + ["-batch", "-"]
        netns = self.netns if self.tool != "ip" else None
        run(netns, argv, input="\n".join(self.lines) + "\n")
        self.lines = []


def ip_json(netns: str | None, *args: str) -> list[dict[str, Any]]:
    """`ip -j ARGS` in `netns` (as `ip_argv` takes it), parsed; CommandError on failure."""
    out = run(None, [*ip_argv(netns), "-j", *args]).stdout.strip()
    return json.loads(out) if out else []


def link_exists(netns: str | None, name: str) -> bool:
    try:
        return bool(ip_json(netns, "link", "show", "dev", name))
    except CommandError:
        return False


def link_info(netns: str | None, name: str) -> dict[str, Any] | None:
    try:
        rows = ip_json(netns, "-d", "link", "show", "dev", name)
    except CommandError:
        return None
    return rows[0] if rows else None


def addresses(netns: str | None, dev: str) -> list[str]:
    """The global addresses of `dev` (no link-local), as plain IPs."""
    rows = ip_json(netns, "addr", "show", "dev", dev)
    out = []
    for r in rows:
        for a in r.get("addr_info") or []:
            if a.get("scope") == "global":
                out.append(str(a.get("local")))
    return out


def interface_prefixes(netns: str | None, ips: list[str]) -> dict[str, str]:
    """Each of `ips` held by an interface, with the prefix length it was configured with
    (`198.18.0.11` -> `198.18.0.11/24`): the node's subnets."""
    out = {}
    for r in ip_json(netns, "addr", "show"):
        for a in r.get("addr_info") or []:
            if a.get("local") in ips and a.get("prefixlen") is not None:
                out[str(a["local"])] = f"{a['local']}/{a['prefixlen']}"
    return out


def default_route_dev(netns: str | None) -> str | None:
    for r in ip_json(netns, "route", "show", "default"):
        if r.get("dev"):
            return str(r["dev"])
    return None


def delete_link(netns: str | None, name: str) -> bool:
    """Delete link `name` (a veth's peer and the link's routes go with it); False when there
    was none. Raises CommandError for any other failure."""
    cp = run(None, ip_argv(netns) + ["link", "del", name], check=False)
    if cp.returncode == 0:
        return True
    if "Cannot find device" in cp.stderr or "does not exist" in cp.stderr:
        return False
    raise CommandError(ip_argv(netns) + ["link", "del", name], cp.returncode, cp.stderr)
