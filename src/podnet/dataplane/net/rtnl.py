"""A minimal rtnetlink client (the CNI daemon wires pods with it): the handful of messages a pod's wiring
needs, packed by hand (struct + socket, no pyroute2), so the daemon wires a pod without
starting `ip` processes. The binaries never import this (they use `ip -batch`).

Requests are sent with NLM_F_ACK and wait for the kernel's answer; a kernel error is
raised as OSError(errno). `batch()` sends several requests in one sendmsg (the kernel
runs them in order and acks each), so a pod's wiring costs two round trips per
namespace, not one per step. `in_netns(path)` opens a socket inside another network
namespace by switching only the calling thread there for the socket() call.
"""
from __future__ import annotations

import errno as _errno
import os
import socket
import struct

from podnet.setns import switched

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 1, 4, 0x200, 0x400, 0x100
NLMSG_ERROR, NLMSG_DONE, NLM_F_DUMP = 2, 3, 0x300
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE, RTM_GETROUTE, RTM_NEWNEIGH = 20, 24, 26, 28
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_IFALIAS, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 5, 20, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_F_NODAD = 1, 2, 8, 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
NDA_DST, NDA_LLADDR, NUD_PERMANENT = 1, 2, 0x80
IFF_UP = 1
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253


def _attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return struct.pack("HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def _str(kind: int, s: str) -> bytes:
    return _attr(kind, s.encode() + b"\0")


def _u32(kind: int, v: int) -> bytes:
    return _attr(kind, struct.pack("I", v))


def _mac(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


def _attrs(payload: bytes, offset: int) -> dict[int, bytes]:
    out = {}
    while offset + 4 <= len(payload):
        n, kind = struct.unpack_from("HH", payload, offset)
        if n < 4:
            break
        out[kind & 0x3FFF] = payload[offset + 4:offset + n]
        offset += (n + 3) & ~3
    return out


def _ip(addr: str) -> tuple[int, bytes]:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return fam, socket.inet_pton(fam, addr)


Request = tuple[int, int, bytes]  # (message type, flags, body)


class Rtnl:
    def __init__(self, sock: socket.socket | None = None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def in_netns(cls, path: str) -> "Rtnl":
        """A netlink socket that lives in the namespace at `path` (a socket keeps the
        namespace it was created in; only this thread switches, briefly)."""
        with switched(path):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> list[bytes]:
        return self.batch([(msg_type, flags, body)])[0]

    def batch(self, reqs: list[Request]) -> list[list[bytes]]:
        """Send `reqs` in one go; each one's reply payloads, in order. The kernel runs every
        request even after one fails; the first failure is raised, as OSError(errno) whose
        message names its position (`request 2 of 5`)."""
        first = self.seq + 1
        msgs = []
        for msg_type, flags, body in reqs:
            self.seq += 1
            msgs.append(struct.pack("IHHII", 16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK,
                                    self.seq, 0) + body)
        self.sock.send(b"".join(msgs))
        out: list[list[bytes]] = [[] for _ in reqs]
        acked, failure = 0, None
        while acked < len(reqs):
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _fl, seq, _pid = struct.unpack_from("IHHII", data, off)
                i = seq - first
                if 0 <= i < len(reqs):
                    if typ == NLMSG_ERROR:
                        acked += 1
                        err = -struct.unpack_from("i", data, off + 16)[0]
                        if err and failure is None:
                            failure = (err, i)
                    else:
                        out[i].append(data[off + 16:off + ln])
                off += (ln + 3) & ~3
        if failure is not None:
            err, i = failure
            where = f" (request {i + 1} of {len(reqs)})" if len(reqs) > 1 else ""
            raise OSError(err, os.strerror(err) + where)
        return out

    def default_route_families(self) -> set[int]:
        """The families (4, 6) that have a default route in the main table (one dump)."""
        self.seq += 1
        body = struct.pack("BBBBBBBBI", socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
        self.sock.send(struct.pack("IHHII", 16 + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP,
                                   self.seq, 0) + body)
        out: set[int] = set()
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _fl, seq, _pid = struct.unpack_from("IHHII", data, off)
                if seq == self.seq:
                    if typ == NLMSG_DONE:
                        return out
                    if typ == NLMSG_ERROR:
                        err = -struct.unpack_from("i", data, off + 16)[0]
                        raise OSError(err, os.strerror(err))
                    fam, dst_len, _s, _t, table, _p, _sc, rtype = struct.unpack_from("BBBBBBBB", data, off + 16)
                    attrs = _attrs(data[off + 16:off + ln], 12)
                    if RTA_TABLE in attrs:
                        table = struct.unpack("I", attrs[RTA_TABLE][:4])[0]
                    if dst_len == 0 and table == RT_TABLE_MAIN and rtype == RTN_UNICAST:
                        out.add(6 if fam == socket.AF_INET6 else 4)
                off += (ln + 3) & ~3

    # ---- links --------------------------------------------------------------------------
    def index(self, name: str) -> int:
        return link_index(self.request(*get_link(name)))

    def link_del(self, name: str) -> bool:
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name))
            return True
        except OSError as e:
            if e.errno in (_errno.ENODEV, _errno.ENOENT):
                return False
            raise


# ---- requests, for Rtnl.batch ------------------------------------------------------------
def veth_add(name: str, peer: str, mtu: int, mac: str, peer_mac: str, peer_netns_fd: int,
             up: bool = False) -> Request:
    """Both ends at once, the peer made directly in its namespace; `up`: the first end up
    (the peer cannot be: the kernel opens it before the pair is joined, ENOTCONN)."""
    flags = IFF_UP if up else 0
    peer_body = (_ifinfo() + _str(IFLA_IFNAME, peer) + _u32(IFLA_MTU, mtu)
                 + _attr(IFLA_ADDRESS, _mac(peer_mac)) + _u32(IFLA_NET_NS_FD, peer_netns_fd))
    info = _str(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_body))
    body = (_ifinfo(0, flags, flags) + _str(IFLA_IFNAME, name) + _u32(IFLA_MTU, mtu)
            + _attr(IFLA_ADDRESS, _mac(mac)) + _attr(IFLA_LINKINFO, info))
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def link_up(index: int) -> Request:
    return RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP)


def set_alias(name: str, alias: str) -> Request:
    return RTM_NEWLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name) + _str(IFLA_IFALIAS, alias)


def get_link(name: str) -> Request:
    return RTM_GETLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name)


def link_index(replies: list[bytes]) -> int:
    for m in replies:
        return struct.unpack_from("BxHiII", m)[2]
    raise OSError(_errno.ENODEV, "no such link")


def peer_index(replies: list[bytes]) -> int:
    """A veth's IFLA_LINK: its peer's ifindex, in the peer's namespace."""
    for m in replies:
        link = _attrs(m, 16).get(IFLA_LINK)
        if link:
            return struct.unpack("I", link[:4])[0]
    raise OSError(_errno.ENODEV, "the link has no peer")


def addr_add(index: int, addr: str, prefixlen: int, nodad: bool = False) -> Request:
    fam, raw = _ip(addr)
    body = struct.pack("BBBBI", fam, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
    if nodad:
        body += _u32(IFA_FLAGS, IFA_F_NODAD)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body


def route_add(index: int, dst: str, dst_len: int, gw: str | None = None,
              scope: int = RT_SCOPE_UNIVERSE) -> Request:
    fam, raw = _ip(dst)
    body = struct.pack("BBBBBBBBI", fam, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
    if dst_len:
        body += _attr(RTA_DST, raw)
    if gw:
        body += _attr(RTA_GATEWAY, _ip(gw)[1])
    body += _u32(RTA_OIF, index)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body


def neigh_replace(index: int, ip: str, mac: str) -> Request:
    fam, raw = _ip(ip)
    body = struct.pack("BBHiHBB", fam, 0, 0, index, NUD_PERMANENT, 0, 0)
    body += _attr(NDA_DST, raw) + _attr(NDA_LLADDR, _mac(mac))
    return RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body


def open_in_netns(path: str, files: list[str]) -> list[int]:
    """File descriptors (O_RDWR) of `files` under /proc/sys/net as the namespace at `path`
    sees them: a /proc/sys/net file belongs to the namespace of the thread that opens it,
    and keeps it. Only this thread switches, briefly, as in `Rtnl.in_netns`."""
    fds: list[int] = []
    with switched(path):
        try:
            for f in files:
                fds.append(os.open(f, os.O_RDWR))
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
    return fds
