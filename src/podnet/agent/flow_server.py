"""The agent's flow recorder (issue 18 §2): reads ulogd's JSON (dataplane/ulogd.py), builds
records (agent/flows.py) into a bounded ring, and answers queries on an abstract unix
socket.

Why an abstract unix socket: it belongs to the network namespace it was bound in, so only
processes inside the node's namespace reach it (the CLI enters it, as root); pods live in
their own namespaces and cannot, and nothing listens on an address host protection
(calc/host.py) would have to guard. Inside the node's namespace, the records name every
pod's connections, so the socket answers root only (SO_PEERCRED, checked before a byte
is read), reads a request within CLIENT_TIMEOUT and up to MAX_REQUEST bytes, and serves
at most MAX_CLIENTS at once: a client that connects and says nothing, or stops reading a
follow stream, holds a thread for seconds, not for ever.

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
from typing import IO, Any, Callable, Iterator

from podnet.agent import flow_accounting, flows
from podnet.agent.flow_staged import StagedJudge
from podnet.api.objects import Pod
from podnet.dataplane import ulogd
from podnet.peercred import peer_uid

log = logging.getLogger("podnet.agent.flows")

SOCKET_NAME = "podnet-flows"  # abstract: "\0podnet-flows" in the node's netns
QUEUE_CAP = 65536  # events read from ulogd but not yet turned into records
CLIENT_TIMEOUT = 5.0  # seconds for the request line, and for each write to a client
MAX_REQUEST = 4096  # bytes: the request is one short JSON line
MAX_CLIENTS = 16  # queries served at once (each is a thread)


class FlowRecorder:
    def __init__(self, node: str, context: Callable[[], tuple[dict[str, flows.Cause], flows.Names]],
                 cap: int = 4096, socket_name: str = SOCKET_NAME,
                 judge: Callable[[], StagedJudge] | None = None):
        self.node = node
        self.ring = flows.FlowRing(cap)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._context = context
        self._causes, self._names = context()
        self._make_judge = judge
        self._judge = judge() if judge is not None else None
        self.socket_name = socket_name
        self.events: queue.Queue[bytes] = queue.Queue(QUEUE_CAP)
        self.stop = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._conf = ""
        self._sock: socket.socket | None = None
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)

    # ---- the names and ids, refreshed by the agent after each sync -----------------------
    def refresh(self) -> None:
        causes, names = self._context()
        judge = self._make_judge() if self._make_judge is not None else None
        with self.lock:
            self._causes, self._names, self._judge = causes, names, judge

    # ---- input ---------------------------------------------------------------------------
    def start(self, conntrack: bool = True) -> None:
        if conntrack:
            flow_accounting.enable()
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
            try:
                self.handle(line)
            except Exception:  # noqa: BLE001 - one odd event must not end the recording
                log.exception("flows: event skipped")

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
        end = flow_accounting.ending(ev)
        with self.lock:
            if end is not None:
                if self.ring.finish(*end) is not None:
                    self.changed.notify_all()
                return
            if "oob.prefix" in ev:
                rec = flows.record_from_log(ev, self.node, self._causes, self._names)
            else:
                rec = flows.record_from_ct(ev, self.node, self._names)
            if rec is not None:
                if self._judge is not None:
                    self._judge.annotate(rec)
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
            refusal = self._refusal(conn)
            if refusal:
                _refuse(conn, refusal)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _refusal(self, conn: socket.socket) -> str:
        """Why this caller is not served ("" when it is); takes a client slot when it is."""
        try:
            uid = peer_uid(conn)
        except OSError as e:
            return f"cannot tell who is calling: {e}"
        if uid != 0:
            log.warning("flow query from uid %d refused", uid)
            return f"the flow socket answers root only, not uid {uid}"
        if not self._slots.acquire(blocking=False):
            return f"busy: {MAX_CLIENTS} queries are being served, try again"
        return ""

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(CLIENT_TIMEOUT)
        f = conn.makefile("rwb")
        try:
            self._answer(f)
        except ValueError as e:
            _write(f, {"error": f"bad request: {e}"})
        except OSError:  # gone, or not reading for CLIENT_TIMEOUT
            pass
        finally:
            self._slots.release()
            for c in (f, conn):
                try:  # closing flushes what a gone client will never read
                    c.close()
                except OSError:
                    pass

    def _answer(self, f: Any) -> None:
        line = f.readline(MAX_REQUEST + 1)
        if len(line) > MAX_REQUEST or (line and not line.endswith(b"\n")):
            _write(f, {"error": f"request longer than {MAX_REQUEST} bytes"})
            return
        req = json.loads(line or b"{}")
        if not isinstance(req, dict):
            raise ValueError("not an object")
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


def _write(f: Any, doc: dict[str, Any]) -> None:
    try:
        f.write(json.dumps(doc).encode() + b"\n")
        f.flush()
    except OSError:
        pass


def _refuse(conn: socket.socket, why: str) -> None:
    """Say why, without reading a byte the caller chose to block on. What it sent already is
    discarded first: closing over unread data would reset the connection before the caller
    reads the reason. At most MAX_REQUEST bytes are discarded, so a caller that keeps
    sending cannot hold the accepting thread."""
    with conn:
        try:
            conn.setblocking(False)
            conn.send(json.dumps({"error": why}).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            conn.recv(MAX_REQUEST)
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
    try:
        f.write(json.dumps({"since": since, "follow": follow}).encode() + b"\n")
        f.flush()
    except BrokenPipeError:  # refused before it read the request: the reason is waiting
        pass
    first = json.loads(f.readline() or b"{}")
    if "error" in first:
        s.close()
        raise OSError(f"the flow recorder refused the query: {first['error']}")

    def records() -> Any:
        with s, f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    return first.get("stats", {}), records()


def context_of(agent: Any) -> Callable[[], tuple[dict[str, flows.Cause], flows.Names]]:
    """The rule ids and names from the agent's state and its policy role. Run after every
    sync: a pod's addresses are read again only when its object changed (`seen`), which
    with 1,000 pods was most of an agent's CPU (issue 22)."""
    seen: dict[tuple[str, str], tuple[Any, list[str]]] = {}  # pod key -> (object, its IPs)

    def pod_rows() -> Iterator[tuple[str, str, list[str]]]:
        now: dict[tuple[str, str], tuple[Any, list[str]]] = {}
        for key, p in agent.state.objects.get("Pod", {}).items():
            got = seen.get(key)
            if got is None or got[0] is not p:
                got = (p, p.pod_ips if isinstance(p, Pod) else [])
            now[key] = got
            yield key[0], key[1], got[1]
        seen.clear()
        seen.update(now)

    def ctx() -> tuple[dict[str, flows.Cause], flows.Names]:
        st = agent.state
        role = next((r for r in agent.roles if r.name == "policy"), None)
        rules, pods = role.flow_rules() if role is not None else ([], [])
        cluster = role.flow_cluster_rules() if role is not None else []
        names = flows.names_of(pod_rows(),
                               ((s.namespace, s.name, s.cluster_ips, [(p.protocol, p.port, p.name) for p in s.ports])
                                for s in st.services))
        return flows.causes_of(rules, pods, cluster), names
    return ctx
