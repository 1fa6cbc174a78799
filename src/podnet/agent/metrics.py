"""The agent's sync counters: per role and for the whole agent, full and partial syncs,
failures and durations, as a Node-status dict and as Prometheus text.

A role counts a sync when it had work in it: every full sync, and a partial sync whose
batch touched a kind the role watches. Its duration is the role's own render and kernel
work plus the shared `nft` transaction (what a change of that role costs end to end).
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from podnet.datastore import decoding


@dataclass
class SyncStats:
    full: int = 0
    partial: int = 0
    failed: int = 0
    last_kind: str = ""
    last_seconds: float = 0.0
    max_seconds: float = 0.0
    seconds_total: float = 0.0

    def record(self, kind: str, seconds: float, ok: bool) -> None:
        if kind == "full":
            self.full += 1
        else:
            self.partial += 1
        if not ok:
            self.failed += 1
        self.last_kind, self.last_seconds = kind, seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.seconds_total += seconds

    def status(self) -> dict[str, object]:
        return {"full": self.full, "partial": self.partial, "failed": self.failed,
                "last": self.last_kind, "lastSeconds": round(self.last_seconds, 6),
                "maxSeconds": round(self.max_seconds, 6),
                "secondsTotal": round(self.seconds_total, 6)}


@dataclass
class AgentMetrics:
    agent: SyncStats = field(default_factory=SyncStats)
    roles: dict[str, SyncStats] = field(default_factory=dict)

    def role(self, name: str) -> SyncStats:
        return self.roles.setdefault(name, SyncStats())

    def status(self) -> dict[str, object]:
        """`status.agent.sync` of the Node: the agent's totals plus one entry per role."""
        return {**self.agent.status(), "roles": {n: s.status() for n, s in sorted(self.roles.items())}}

    def prometheus(self, node: str) -> str:
        lines = []
        for metric, help_, kind in (
                ("podnet_agent_syncs_total", "Syncs by kind (full, partial).", "counter"),
                ("podnet_agent_sync_failures_total", "Syncs that failed.", "counter"),
                ("podnet_agent_sync_seconds_total", "Time spent in syncs.", "counter"),
                ("podnet_agent_last_sync_seconds", "Duration of the last sync.", "gauge")):
            lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} {kind}"]
            for role, s in [("", self.agent), *sorted(self.roles.items())]:
                lbl = f'node="{node}",role="{role or "all"}"'
                if metric == "podnet_agent_syncs_total":
                    lines += [f'{metric}{{{lbl},kind="full"}} {s.full}',
                              f'{metric}{{{lbl},kind="partial"}} {s.partial}']
                elif metric == "podnet_agent_sync_failures_total":
                    lines.append(f"{metric}{{{lbl}}} {s.failed}")
                elif metric == "podnet_agent_sync_seconds_total":
                    lines.append(f"{metric}{{{lbl}}} {s.seconds_total:.6f}")
                else:
                    lines.append(f"{metric}{{{lbl}}} {s.last_seconds:.6f}")
        lines += decoding.prometheus_lines()  # entries this agent's readers skipped
        return "\n".join(lines) + "\n"


def serve_metrics(port: int, text: Callable[[], str], host: str = "::") -> ThreadingHTTPServer:
    """`GET /metrics` answers `text()` (Prometheus text format 0.0.4), in a daemon thread of
    the calling process, on every address of its network namespace; `.shutdown()` stops it."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    server = Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
