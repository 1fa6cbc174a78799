"""The agent's flow recorder (issue 18 §2): reads ulogd's JSON (dataplane/ulogd.py), builds
records (agent/flows.py) into a bounded ring, and answers queries on an abstract unix
socket.

Why an abstract unix socket: it belongs to the network namespace it was bound in, so only
processes inside the node's namespace reach it (the CLI enters it, as root); pods live in
their own namespaces and cannot, and nothing listens on an address host protection
(calc/host.py) would have to guard.

Protocol: the client sends one JSON line `{"since": <unix time>, "follow": bool}`; the
answer is a line `{"stats": {...}}`, then one line per record (oldest first), then, with
`follow`, new records as they come until the client goes away.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import queue
import socket
import subprocess
import threading
import time
from typing import IO, Any, Callable

from podnet.agent import flows
from podnet.dataplane import ulogd

log = logging.getLogger("podnet.agent.flows")

SOCKET_NAME = "podnet-flows"  # abstract: "\0podnet-flows" in the node's netns
QUEUE_CAP = 65536  # events read from ulogd but not yet turned into records


class FlowRecorder:
    def __init__(self, node: str, context: Callable[[], tuple[dict[str, flows.Cause], flows.Names]],
                 cap: int = 4096, socket_name: str = SOCKET_NAME):
        self.node = node
        self.ring = flows.FlowRing(cap)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._context = context
        self._causes, self._names = context()
        self.socket_name = socket_name
        self.events: queue.Queue[bytes] = queue.Queue(QUEUE_CAP)
        self.stop = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._conf = ""
        self._sock: socket.socket | None = None

    # ---- the names and ids, refreshed by the agent after each sync -----------------------
    def refresh(self) -> None:
        causes, names = self._context()
        with self.lock:
            self._causes, self._names = causes, names

    # ---- input ---------------------------------------------------------------------------
    def start(self, conntrack: bool = True) -> None:
        self._listen()
        self.proc, self._conf = ulogd.start(conntrack)
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True, name="flows-read").start()
        threading.Thread(target=self._build, daemon=True, name="flows-build").start()

    def _read(self, out: IO[bytes] | None) -> None:
        """Only moves lines to the queue: a burst must not wait for record building."""
        assert out is not None
        for line in out:
            try:
                self.events.put_nowait(line)
            except queue.Full:
                with self.lock:
                    self.ring.note_lost()

    def _build(self) -> None:
        while not self.stop.is_set():
            try:
                line = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            self.handle(line)

    def handle(self, line: bytes) -> None:
        if not line.startswith(b"{"):
            if ulogd.OVERRUN in line:  # the kernel dropped messages: how many, nobody knows
                with self.lock:
                    self.ring.overruns += 1
            return  # ulogd's own log lines
        try:
            ev = json.loads(line)
        except ValueError:
            return
        with self.lock:
            if "oob.prefix" in ev:
                rec = flows.record_from_log(ev, self.node, self._causes, self._names)
            else:
                rec = flows.record_from_ct(ev, self.node, self._names)
            if rec is not None:
                self.ring.add(rec)
                self.changed.notify_all()

    # ---- queries -------------------------------------------------------------------------
    def _listen(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for attempt in range(20):
            try:  # a recorder closed just before may hold the name a moment longer
                s.bind("\0" + self.socket_name)
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or attempt == 19:
                    s.close()
                    raise
                time.sleep(0.1)
        s.listen(16)
        self._sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True, name="flows-serve").start()

    def _accept(self, s: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            try:
                req = json.loads(f.readline() or b"{}")
                since, follow = float(req.get("since") or 0), bool(req.get("follow"))
                with self.lock:
                    recs = self.ring.since(since)
                    f.write(json.dumps({"stats": self.stats()}).encode() + b"\n")
                last = recs[-1]["seq"] if recs else self.ring.seq
                for r in recs:
                    f.write(json.dumps(r).encode() + b"\n")
                f.flush()
                while follow and not self.stop.is_set():
                    with self.lock:
                        self.changed.wait(1.0)
                        recs = self.ring.since(since, last)
                    for r in recs:
                        f.write(json.dumps(r).encode() + b"\n")
                        last = max(last, r["seq"])
                    f.write(b"\n")  # a keep-alive: a gone client shows up as a broken pipe
                    f.flush()
            except (OSError, ValueError):
                return

    def stats(self) -> dict[str, Any]:
        return {**self.ring.stats(), "node": self.node, "time": time.time()}

    def prometheus(self) -> list[str]:
        """Per-verdict and per-policy counters (issue 18 §2)."""
        with self.lock:
            st, verdicts, pols = self.ring.stats(), dict(self.ring.by_verdict), dict(self.ring.by_policy)
        n = self.node
        out = ["# HELP podnet_flows_total Flow records by verdict.", "# TYPE podnet_flows_total counter"]
        out += [f'podnet_flows_total{{node="{n}",verdict="{v}"}} {verdicts.get(v, 0)}' for v in flows.VERDICTS]
        out += ["# HELP podnet_flows_policy_total Flows a NetworkPolicy decided (allowed by a rule, or "
                "dropped as isolated by it).", "# TYPE podnet_flows_policy_total counter"]
        out += [f'podnet_flows_policy_total{{node="{n}",policy="{p}",direction="{d}",verdict="{v}"}} {c}'
                for (p, d, v), c in sorted(pols.items())]
        out += ["# HELP podnet_flows_overruns_total Times the kernel's log or conntrack queue to ulogd overflowed.",
                "# TYPE podnet_flows_overruns_total counter",
                f'podnet_flows_overruns_total{{node="{n}"}} {st["overruns"]}']
        out += ["# HELP podnet_flows_lost_total Flow records lost (overwritten unread or no room).",
                "# TYPE podnet_flows_lost_total counter", f'podnet_flows_lost_total{{node="{n}"}} {st["lost"]}',
                "# HELP podnet_flows_stored Flow records in the ring.", "# TYPE podnet_flows_stored gauge",
                f'podnet_flows_stored{{node="{n}"}} {st["stored"]}']
        return out

    def close(self) -> None:
        self.stop.set()
        if self._sock is not None:
            try:  # wakes the accepting thread, which otherwise keeps the name bound
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._conf:
            try:
                os.unlink(self._conf)
            except OSError:
                pass


def query(netns: str | None, since: float = 0.0, follow: bool = False,
          socket_name: str = SOCKET_NAME, timeout: float = 5.0) -> tuple[dict[str, Any], Any]:
    """Ask the agent in `netns` (None: this one): its stats and an iterator of records."""
    from podnet import setns
    if netns is None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        with setns.switched(netns):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect("\0" + socket_name)
    if follow:
        s.settimeout(None)
    f = s.makefile("rwb")
    f.write(json.dumps({"since": since, "follow": follow}).encode() + b"\n")
    f.flush()
    first = json.loads(f.readline() or b"{}")

    def records() -> Any:
        with s, f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    return first.get("stats", {}), records()


def context_of(agent: Any) -> Callable[[], tuple[dict[str, flows.Cause], flows.Names]]:
    """The rule ids and names from the agent's state and its policy role."""
    def ctx() -> tuple[dict[str, flows.Cause], flows.Names]:
        st = agent.state
        role = next((r for r in agent.roles if r.name == "policy"), None)
        rules, pods = role.flow_rules() if role is not None else ([], [])
        names = flows.names_of(((p.namespace, p.name, p.pod_ips) for p in st.pods),
                               ((s.namespace, s.name, s.cluster_ips, [(p.protocol, p.port, p.name) for p in s.ports])
                                for s in st.services))
        return flows.causes_of(rules, pods), names
    return ctx
