"""kube-proxy's service health check (issue 16 §2): for every LoadBalancer Service with
externalTrafficPolicy Local, each node's agent answers HTTP on the Service's
healthCheckNodePort, so an outside load balancer sends traffic only to nodes that have a
local endpoint. As kube-proxy's healthcheck server: any GET answers
`{"service": {"namespace", "name"}, "localEndpoints": N, "serviceProxyHealthy": true}`,
200 when N > 0, 503 when not. One listener per port, dual-stack (`::`), in the agent's
netns (or `netns` when the agent manages one from outside). No nftables: `apply_kernel`
opens and closes listeners; the counts are read at each request from the last sync.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from podnet.api.objects import EndpointSlice, ObjectKey, Service
from podnet.calc.model import ClusterState

log = logging.getLogger("podnet.agent.healthcheck")


def wanted(state: ClusterState) -> dict[int, tuple[str, str, int]]:
    """healthCheckNodePort -> (namespace, name, ready local endpoints on this node)."""
    by_svc: dict[tuple[str, str], set[str]] = {}
    for s in state.endpoint_slices:
        if isinstance(s, EndpointSlice) and s.service_name:
            for ep in s.endpoints:
                if ep.ready and ep.node_name == state.node_name:
                    by_svc.setdefault((s.namespace, s.service_name), set()).update(ep.addresses)
    out: dict[int, tuple[str, str, int]] = {}
    for svc in state.services:
        if not isinstance(svc, Service) or svc.type != "LoadBalancer" or svc.external_traffic_policy != "Local":
            continue
        try:
            port = int(svc.spec.get("healthCheckNodePort") or 0)
        except (TypeError, ValueError):
            continue
        if 0 < port < 65536:
            out[port] = (svc.namespace, svc.name, len(by_svc.get((svc.namespace, svc.name), ())))
    return out


class _Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class HealthCheckRole:
    name = "healthcheck"
    kinds = ("Service", "EndpointSlice")

    def __init__(self, netns: str | None = None):
        self.netns = netns
        self.state: dict[int, tuple[str, str, int]] = {}
        self.servers: dict[int, ThreadingHTTPServer] = {}

    def nft_fragment(self, state: ClusterState, changed: set[ObjectKey] | None) -> str:
        return ""

    def committed(self, ok: bool) -> None:
        pass

    def apply_kernel(self, state: ClusterState) -> None:
        self.state = wanted(state)
        for port in sorted(set(self.servers) - set(self.state)):
            self._close(port)
        for port in sorted(set(self.state) - set(self.servers)):
            try:
                self.servers[port] = self._open(port)
            except OSError as e:  # the port is someone else's: retried at the next sync
                log.warning("health check port %d: %s", port, e)

    def close(self) -> None:
        for port in list(self.servers):
            self._close(port)

    def _close(self, port: int) -> None:
        srv = self.servers.pop(port)
        srv.shutdown()
        srv.server_close()

    def _open(self, port: int) -> ThreadingHTTPServer:
        role = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                ns, name, n = role.state.get(port, ("", "", 0))
                body = json.dumps({"service": {"namespace": ns, "name": name}, "localEndpoints": n,
                                   "serviceProxyHealthy": True}).encode()
                self.send_response(200 if n > 0 else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        if self.netns is None:
            srv = _Server(("::", port), Handler)
        else:
            from podnet import setns
            with setns.switched(self.netns):
                srv = _Server(("::", port), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True, name=f"healthcheck-{port}").start()
        return srv
