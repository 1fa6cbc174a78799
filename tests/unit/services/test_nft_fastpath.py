"""fastpath: which scripts become a raw netlink batch, and the bytes of the element keys
and data (the layouts nft uses; tests/kernel/services/test_nft_fastpath_kernel.py checks
the same scripts against libnftables on a real kernel)."""
from __future__ import annotations

import socket
import struct

from podnet.agent.service_proxy_role import ServiceProxyRole
from podnet.calc.model import ClusterState
from podnet.dataplane.nft import fastpath
from podnet.dataplane.nft.services import T
from builders import endpoint, make_slice
from svc_fixture import NODE_IPS, objects


def _msgs(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload after nfgenmsg) of every message of a batch."""
    out, off = [], 0
    while off < len(data):
        n, typ, flags, seq, _ = struct.unpack_from("=IHHII", data, off)
        out.append((typ, flags, seq, data[off + 20:off + n]))
        off += (n + 3) & ~3
    return out


def test_partial_sync_scripts_translate_and_others_do_not():
    role = ServiceProxyRole(NODE_IPS)
    svcs, slices = objects()
    st = ClusterState.from_objects([*svcs, *slices], "node-1")
    full = role.nft_fragment(st, None)
    role.committed(True)
    assert fastpath.batch(full) is None  # `add table`, base chains, interval sets: libnftables
    sl = make_slice("default", "web", [endpoint("10.244.1.99"), endpoint("10.244.2.98", node="node-2")])
    st.put(sl)
    partial = role.nft_fragment(st, {sl.key})
    role.committed(True)
    got = fastpath.batch(partial)
    assert got is not None, partial
    data, what = got
    assert sorted(what.values()) == sorted(line for line in partial.splitlines() if line)
    assert [m[2] for m in _msgs(data) if m[1] & fastpath.NLM_F_ACK] == fastpath.acked(data) == sorted(what)
    for other in (f"add rule {T} x ip saddr 10.0.0.1 drop", f"add element {T} podcidrs4 {{ 10.0.0.0/8 }}",
                  "add element inet other ep4 { 0x50001000 : 10.0.0.1 . 80 }", f"flush table {T}",
                  f"add element {T} ep4 {{ 0x50001000 }}"):  # a map element without its value
        assert fastpath.batch(partial + other + "\n") is None, other


def test_element_layouts():
    data, _ = fastpath.batch(f"add element {T} ep4 {{ 0x50001002 : 10.0.0.1 . 8080 }}\n"
                             f"add element {T} svc6 {{ fd00::1 . sctp . 53 : jump c1 }}\n"
                             f"delete element {T} np4 {{ udp . 30080 }}\n")
    msgs = _msgs(data)
    assert [m[0] & 0xFF for m in msgs] == [fastpath.NFNL_MSG_BATCH_BEGIN, fastpath.NFT_MSG_NEWSETELEM,
                                           fastpath.NFT_MSG_NEWSETELEM, fastpath.NFT_MSG_DELSETELEM,
                                           fastpath.NFNL_MSG_BATCH_END]
    ep4, svc6, np4 = (m[3] for m in msgs[1:4])
    # mark: host order; a concatenation: each field in whole 32-bit words, zero padded
    assert struct.pack("=I", 0x50001002) in ep4
    assert socket.inet_aton("10.0.0.1") + b"\x1f\x90\0\0" in ep4
    assert socket.inet_pton(socket.AF_INET6, "fd00::1") + bytes([132, 0, 0, 0]) + b"\x00\x35\0\0" in svc6
    assert struct.pack("!i", fastpath.NFT_JUMP) in svc6 and b"c1\0" in svc6
    assert bytes([17, 0, 0, 0]) + b"\x75\x80\0\0" in np4
    assert msgs[1][1] & fastpath.NLM_F_CREATE and not msgs[3][1] & fastpath.NLM_F_CREATE


def test_errors_reads_acks_and_failures():
    def err(seq: int, code: int) -> bytes:
        inner = struct.pack("=IHHII", 16, 0, 0, seq, 0)
        return struct.pack("=IHHII", 36, fastpath.NLMSG_ERROR, 0, 0, 0) + struct.pack("=i", -code) + inner
    assert fastpath.errors(err(3, 0) + err(5, 2)) == [(3, 0), (5, 2)]
