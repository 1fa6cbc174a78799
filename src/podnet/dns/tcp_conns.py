"""Which DNS-over-TCP connections the server keeps, so a few clients cannot deny TCP to the rest.

RFC 7766 §6.2.3 lets a server close idle connections when it runs short of them. The table
admits a new connection unless its client already holds `per_client`; when all `limit`
slots are taken it closes the connection that has been idle longest (waiting for its next
query, not in the middle of one) to make room, and refuses the new one only when every
connection is busy. Pure bookkeeping; the server shuts the evicted socket down.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C")


@dataclass
class _Entry:
    client: str
    idle_since: float | None  # None while a query is being read or answered


class TcpConnTable(Generic[C]):
    def __init__(self, limit: int, per_client: int, clock=time.monotonic) -> None:
        self.limit = limit
        self.per_client = per_client
        self._clock = clock
        self._lock = threading.Lock()
        self._conns: dict[C, _Entry] = {}
        self.evicted = 0
        self.refused = 0

    def admit(self, conn: C, client: str) -> tuple[bool, C | None]:
        """(admitted, a connection to close to make room for it or None)."""
        with self._lock:
            if sum(e.client == client for e in self._conns.values()) >= self.per_client:
                self.refused += 1
                return False, None
            victim = None
            if len(self._conns) >= self.limit:
                idle = [(e.idle_since, i, c) for i, (c, e) in enumerate(self._conns.items())
                        if e.idle_since is not None]
                if not idle:
                    self.refused += 1
                    return False, None
                victim = min(idle, key=lambda t: (t[0], t[1]))[2]
                del self._conns[victim]
                self.evicted += 1
            self._conns[conn] = _Entry(client, self._clock())
            return True, victim

    def idle(self, conn: C) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns[conn].idle_since = self._clock()

    def busy(self, conn: C) -> bool:
        """Mark a query under way; False when the connection was evicted meanwhile."""
        with self._lock:
            e = self._conns.get(conn)
            if e is None:
                return False
            e.idle_since = None
            return True

    def forget(self, conn: C) -> None:
        with self._lock:
            self._conns.pop(conn, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._conns)
