"""Forget conntrack entries that still send traffic to an endpoint that is gone.

UDP has no connection end: while a client keeps sending from the same port, conntrack keeps
its DNAT to the old endpoint, so kube-proxy deletes those entries when an endpoint leaves a
UDP Service. `conntrack -D` in the node's namespace; "0 flow entries" is not an error.
"""
from __future__ import annotations

from podnet.dataplane.net.netns import run


def delete_udp_flows(netns: str | None, vip: str, endpoint_ip: str) -> None:
    family = "ipv6" if ":" in vip else "ipv4"
    run(netns, ["conntrack", "-D", "-f", family, "-p", "udp", "--orig-dst", vip,
                "--dst-nat", endpoint_ip], check=False)
