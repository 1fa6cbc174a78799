"""A minimal rtnetlink client for the CNI daemon: the handful of messages a pod's wiring
needs, packed by hand (struct + socket, no pyroute2), so the daemon wires a pod without
starting `ip` processes. The binaries never import this (they use `ip -batch`).

Requests are sent with NLM_F_ACK and wait for the kernel's answer; a kernel error is
raised as OSError(errno). `in_netns(path)` opens a socket inside another network
namespace by switching only the calling thread there for the socket() call.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import socket
import struct
import threading

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 1, 4, 0x200, 0x400, 0x100
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH = 20, 24, 28
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_IFALIAS, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 20, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_F_NODAD = 1, 2, 8, 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
NDA_DST, NDA_LLADDR, NUD_PERMANENT = 1, 2, 0x80
IFF_UP = 1
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_ns_lock = threading.Lock()


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


def _ip(addr: str) -> tuple[int, bytes]:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return fam, socket.inet_pton(fam, addr)


class Rtnl:
    def __init__(self, sock: socket.socket | None = None):
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def in_netns(cls, path: str) -> "Rtnl":
        """A netlink socket that lives in the namespace at `path` (a socket keeps the
        namespace it was created in; only this thread switches, briefly)."""
        target = os.open(path, os.O_RDONLY)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            with _ns_lock:
                if _libc.setns(target, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({path}): {os.strerror(e)}")
                try:
                    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
                finally:
                    if _libc.setns(home, CLONE_NEWNET) != 0:  # cannot happen; never go on in the pod's netns
                        os._exit(70)
        finally:
            os.close(target)
            os.close(home)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> list[bytes]:
        self.seq += 1
        msg = struct.pack("IHHII", 16 + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body
        self.sock.send(msg)
        out = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _fl, seq, _pid = struct.unpack_from("IHHII", data, off)
                if seq == self.seq:
                    if typ == NLMSG_ERROR:
                        err = -struct.unpack_from("i", data, off + 16)[0]
                        if err:
                            raise OSError(err, os.strerror(err))
                        return out
                    out.append(data[off + 16:off + ln])
                off += (ln + 3) & ~3

    # ---- links --------------------------------------------------------------------------
    def veth_add(self, name: str, peer: str, mtu: int, mac: str, peer_mac: str, peer_netns_fd: int) -> None:
        peer_body = (_ifinfo() + _str(IFLA_IFNAME, peer) + _u32(IFLA_MTU, mtu)
                     + _attr(IFLA_ADDRESS, _mac(peer_mac)) + _u32(IFLA_NET_NS_FD, peer_netns_fd))
        info = _str(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_body))
        body = (_ifinfo() + _str(IFLA_IFNAME, name) + _u32(IFLA_MTU, mtu) + _attr(IFLA_ADDRESS, _mac(mac))
                + _attr(IFLA_LINKINFO, info))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def index(self, name: str) -> int:
        for m in self.request(RTM_GETLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name)):
            return struct.unpack_from("BxHiII", m)[2]
        raise OSError(_errno.ENODEV, f"no link {name}")

    def link_set(self, index: int, up: bool = True, alias: str | None = None) -> None:
        body = _ifinfo(index, IFF_UP if up else 0, IFF_UP)
        if alias is not None:
            body += _str(IFLA_IFALIAS, alias)
        self.request(RTM_NEWLINK, 0, body)

    def link_del(self, name: str) -> bool:
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _str(IFLA_IFNAME, name))
            return True
        except OSError as e:
            if e.errno in (_errno.ENODEV, _errno.ENOENT):
                return False
            raise

    # ---- addresses, routes, neighbours ----------------------------------------------------
    def addr_add(self, index: int, addr: str, prefixlen: int, nodad: bool = False) -> None:
        fam, raw = _ip(addr)
        body = struct.pack("BBBBI", fam, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        if nodad:
            body += _u32(IFA_FLAGS, IFA_F_NODAD)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def route_add(self, index: int, dst: str, dst_len: int, gw: str | None = None,
                  scope: int = RT_SCOPE_UNIVERSE) -> None:
        fam, raw = _ip(dst)
        body = struct.pack("BBBBBBBBI", fam, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        if dst_len:
            body += _attr(RTA_DST, raw)
        if gw:
            body += _attr(RTA_GATEWAY, _ip(gw)[1])
        body += _u32(RTA_OIF, index)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)

    def neigh_replace(self, index: int, ip: str, mac: str) -> None:
        fam, raw = _ip(ip)
        body = struct.pack("BBHiHBB", fam, 0, 0, index, NUD_PERMANENT, 0, 0)
        body += _attr(NDA_DST, raw) + _attr(NDA_LLADDR, _mac(mac))
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)
