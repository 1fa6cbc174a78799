"""Ask upstream servers about names outside the cluster, and cache what they say.

As CoreDNS's `forward` + `cache`: UDP first, TCP when the answer comes back truncated; on
a timeout or error the next upstream is tried. Positive answers are cached for the
smallest TTL in them, negative ones (NXDOMAIN, NODATA) for the SOA's min(TTL, minimum)
(RFC 2308), both capped at `max_ttl` (kubeadm's `cache 30`). A cache hit is served with
its TTLs counted down. Blocking I/O: the server calls this from worker threads.
"""
from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

import dnslib

from podnet.dns.records import SOA

OPT = 41


@dataclass
class _Entry:
    wire: bytes
    stored: float
    expires: float


class Forwarder:
    def __init__(self, upstreams: list[tuple[str, int]], timeout: float = 2.0,
                 max_ttl: int = 30, max_entries: int = 9984,
                 clock=time.monotonic):
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.max_ttl = max_ttl
        self.max_entries = max_entries
        self.clock = clock
        self._cache: dict[tuple[bytes, int, int], _Entry] = {}
        self._lock = threading.Lock()
        self.stats = {"queries": 0, "hits": 0, "upstream": 0, "failures": 0}

    # ---- the cache ----------------------------------------------------------------------
    def _get(self, key: tuple[bytes, int, int]) -> dnslib.DNSRecord | None:
        e = self._cache.get(key)
        if e is None:
            return None
        now = self.clock()
        if now >= e.expires:
            self._cache.pop(key, None)
            return None
        rec = dnslib.DNSRecord.parse(e.wire)
        age = int(now - e.stored)
        for rr in rec.rr + rec.auth + rec.ar:
            if rr.rtype != OPT:
                rr.ttl = max(0, rr.ttl - age)
        return rec

    def cache_ttl(self, rec: dnslib.DNSRecord) -> int:
        """How long this upstream answer may be reused (0: not at all)."""
        rcode = rec.header.rcode
        if rcode == 0 and rec.rr:
            ttl = min(rr.ttl for rr in rec.rr)
        elif rcode in (0, 3):
            soas = [rr for rr in rec.auth if rr.rtype == SOA]
            if not soas:
                return 0
            ttl = min(soas[0].ttl, soas[0].rdata.times[4])
        else:
            return 0
        return max(0, min(ttl, self.max_ttl))

    def _put(self, key: tuple[bytes, int, int], rec: dnslib.DNSRecord) -> None:
        ttl = self.cache_ttl(rec)
        if ttl <= 0:
            return
        with self._lock:
            if len(self._cache) >= self.max_entries:
                # Random eviction, as CoreDNS's cache does.
                for k in random.sample(list(self._cache), max(1, self.max_entries // 16)):
                    self._cache.pop(k, None)
            now = self.clock()
            self._cache[key] = _Entry(rec.pack(), now, now + ttl)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    # ---- asking upstream ----------------------------------------------------------------
    def query(self, labels: tuple[bytes, ...], qtype: int, qclass: int = 1) -> dnslib.DNSRecord | None:
        """The upstream answer for one question, from the cache when fresh; None when no
        upstream answered."""
        self.stats["queries"] += 1
        key = (b".".join(labels).lower(), qtype, qclass)
        hit = self._get(key)
        if hit is not None:
            self.stats["hits"] += 1
            return hit
        rec = self._ask(labels, qtype, qclass)
        if rec is None:
            self.stats["failures"] += 1
            return None
        self._put(key, rec)
        return rec

    def _ask(self, labels: tuple[bytes, ...], qtype: int, qclass: int) -> dnslib.DNSRecord | None:
        if not self.upstreams:
            return None
        q = dnslib.DNSRecord(dnslib.DNSHeader(id=random.randint(0, 0xFFFF), rd=1),
                             q=dnslib.DNSQuestion(dnslib.DNSLabel(list(labels)), qtype, qclass))
        q.add_ar(dnslib.EDNS0(udp_len=1232))
        wire = q.pack()
        start = random.randrange(len(self.upstreams))
        for i in range(len(self.upstreams)):
            addr = self.upstreams[(start + i) % len(self.upstreams)]
            self.stats["upstream"] += 1
            try:
                resp = self._udp(addr, wire)
                if resp is not None and resp.header.tc:
                    resp = self._tcp(addr, wire)
            except Exception:  # noqa: BLE001 - any upstream garbage is just a failed try
                resp = None
            if resp is not None and resp.header.id == q.header.id and \
                    resp.q.qname == q.q.qname and resp.q.qtype == qtype:
                resp.ar = [rr for rr in resp.ar if rr.rtype != OPT]
                return resp
        return None

    def _family(self, host: str) -> int:
        return socket.AF_INET6 if ":" in host else socket.AF_INET

    def _udp(self, addr: tuple[str, int], wire: bytes) -> dnslib.DNSRecord | None:
        with socket.socket(self._family(addr[0]), socket.SOCK_DGRAM) as s:
            s.settimeout(self.timeout)
            s.connect(addr)
            s.send(wire)
            deadline = self.clock() + self.timeout
            while self.clock() < deadline:
                data = s.recv(65535)
                if len(data) >= 2 and data[:2] == wire[:2]:
                    return dnslib.DNSRecord.parse(data)
        return None

    def _tcp(self, addr: tuple[str, int], wire: bytes) -> dnslib.DNSRecord | None:
        with socket.create_connection(addr, timeout=self.timeout) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            n = struct.unpack("!H", _recv_exact(s, 2))[0]
            return dnslib.DNSRecord.parse(_recv_exact(s, n))


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed early")
        buf += chunk
    return buf
