"""Forget conntrack entries that still send traffic to an endpoint that is gone.

UDP has no connection end: while a client keeps sending from the same port, conntrack keeps
its DNAT to the old endpoint, so kube-proxy deletes those entries when an endpoint leaves a
UDP Service, whether the flow came to the ClusterIP or to a NodePort. `conntrack -D` in
the node's namespace; "0 flow entries" is not an error.
"""
from __future__ import annotations

from podnet.dataplane.net.netns import run


def delete_udp_flows(netns: str | None, endpoint_ip: str, orig_dst: str = "",
                     orig_port_dst: int = 0) -> None:
    """UDP flows DNATed to `endpoint_ip` that came to `orig_dst` (a service address), or
    to port `orig_port_dst` on any address (a NodePort)."""
    family = "ipv6" if ":" in endpoint_ip else "ipv4"
    match = ["--orig-dst", orig_dst] if orig_dst else ["--orig-port-dst", str(orig_port_dst)]
    run(netns, ["conntrack", "-D", "-f", family, "-p", "udp", *match, "--reply-src", endpoint_ip],
        check=False)
