"""A small nftables script as ONE raw netlink batch, without libnftables. Pure: no I/O
(the session's helper process sends the bytes, session.py).

Why: nft 1.0.6 (Debian 12's) fills its cache before every transaction, and for any `add
element`, `delete element`, `add rule` or `delete chain` that cache is every chain of
every table (its evaluate_cache_add; nftables fixed it in later releases). A one-endpoint
change of a 50,000-Service table then lists 50,000 chains to change one map element. This
module translates a script made only of the statements a service proxy's partial sync
writes (elements of plain sets and maps, a chain added, flushed or deleted, the draw rule
`meta mark set numgen random mod N offset M`) into the batch nft itself would send; any
other statement, or a set whose key layout is not declared, gives None and the caller
uses libnftables as before. The kernel applies the batch as one transaction, as `nft -f`.

Set layouts are declared by the renderer that owns the table (`declare_sets`), in nft's
own type words, so the translation needs no listing of the kernel.
"""
from __future__ import annotations

import re
import socket
import struct

# linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x1, 0x4, 0x200, 0x400, 0x800
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE = 3, 5, 6, 8
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFPROTO = {"inet": 1, "ip": 2, "ip6": 10}
NFT_JUMP, NFT_GOTO, NF_DROP, NF_ACCEPT = -3, -4, 0, 1
NFT_REG32_00 = 8
NFT_META_MARK = 3
NFT_NG_RANDOM = 1
PROTOS = {"tcp": 6, "udp": 17, "sctp": 132}
MAX_BATCH = 96 * 1024  # bytes: one datagram, well inside the socket's default buffer
ELEMS_PER_MSG = 256


_SCHEMA: dict[tuple[str, str], dict[str, tuple[tuple[str, ...], str]]] = {}


def declare_sets(family: str, table: str, sets: dict[str, str]) -> None:
    """`sets`: name -> nft type text (`ipv4_addr . inet_service`, `mark : ipv4_addr .
    inet_service`, `... : verdict`). Interval sets are not declared (nft splits their
    elements into ranges; they stay with libnftables)."""
    out = {}
    for name, typ in sets.items():
        key, _, data = typ.partition(" : ")
        out[name] = (tuple(k.strip() for k in key.split(" . ")), data.strip())
    _SCHEMA[(family, table)] = out


def _field(typ: str, text: str) -> bytes:
    if typ == "ipv4_addr":
        return socket.inet_pton(socket.AF_INET, text)
    if typ == "ipv6_addr":
        return socket.inet_pton(socket.AF_INET6, text)
    if typ == "inet_proto":
        return bytes([PROTOS[text] if text in PROTOS else int(text)])
    if typ == "inet_service":
        return struct.pack("!H", int(text))
    if typ == "mark":
        return struct.pack("=I", int(text, 0))  # host byte order, as meta mark
    raise ValueError(typ)


def _value(types: tuple[str, ...], text: str) -> bytes:
    parts = [p.strip() for p in text.split(" . ")]
    if len(parts) != len(types):
        raise ValueError(text)
    if len(types) == 1:
        return _field(types[0], parts[0])
    # a concatenation: every field takes whole 32-bit registers, zero padded
    return b"".join(b.ljust((len(b) + 3) & ~3, b"\0") for b in (_field(t, p) for t, p in zip(types, parts)))


def _attr(typ: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, typ) + payload + b"\0" * (-n & 3)


def _nest(typ: int, *attrs: bytes) -> bytes:
    return _attr(typ | NLA_F_NESTED, b"".join(attrs))


def _str(typ: int, s: str) -> bytes:
    return _attr(typ, s.encode() + b"\0")


def _u32(typ: int, v: int) -> bytes:
    return _attr(typ, struct.pack("!I", v & 0xFFFFFFFF))


def _msg(typ: int, flags: int, seq: int, family: int, payload: bytes, subsys: int = NFNL_SUBSYS_NFTABLES,
         res_id: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), (subsys << 8) | typ, flags, seq, 0) + body


def _verdict(text: str) -> bytes:
    words = text.split()
    if words[0] in ("jump", "goto") and len(words) == 2:
        code = _u32(1, NFT_JUMP if words[0] == "jump" else NFT_GOTO)
        return _nest(2, code, _str(2, words[1]))  # NFTA_DATA_VERDICT {CODE, CHAIN}
    if text in ("drop", "accept"):
        return _nest(2, _u32(1, NF_DROP if text == "drop" else NF_ACCEPT))
    raise ValueError(text)


def _elements(schema: tuple[tuple[str, ...], str], items: list[str], add: bool) -> list[bytes]:
    key_t, data_t = schema
    out = []
    for item in items:
        key, _, val = item.partition(" : ")
        if add and bool(val) != bool(data_t):
            raise ValueError(item)
        attrs = [_nest(1, _attr(1, _value(key_t, key)))]  # NFTA_SET_ELEM_KEY {NFTA_DATA_VALUE}
        if add and data_t:
            data = _verdict(val) if data_t == "verdict" else _attr(1, _value(tuple(
                t.strip() for t in data_t.split(" . ")), val))
            attrs.append(_nest(2, data))  # NFTA_SET_ELEM_DATA
        out.append(_nest(1, *attrs))  # NFTA_LIST_ELEM
    return out


_ELEM = re.compile(r"(add|delete) element (\S+) (\S+) (\S+) \{ (.*) \}$")
_CHAIN = re.compile(r"(add|flush|delete) chain (\S+) (\S+) (\S+)$")
_DRAW = re.compile(r"add rule (\S+) (\S+) (\S+) meta mark set numgen random mod (\d+) offset (0x[0-9a-fA-F]+)$")


def batch(script: str, seq: int = 1) -> tuple[bytes, dict[int, str]] | None:
    """The netlink batch doing exactly what `script` does, and the statement of each
    acked message by its sequence number; None when any statement is outside what this
    module translates."""
    if len(script) > MAX_BATCH:  # a full sync: libnftables parses that faster anyway
        return None
    try:
        return _batch(script, seq)
    except (ValueError, KeyError, OSError):
        return None


def _batch(script: str, seq: int) -> tuple[bytes, dict[int, str]] | None:
    msgs: list[bytes] = [_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, b"", subsys=0,
                              res_id=NFNL_SUBSYS_NFTABLES)]
    what: dict[int, str] = {}
    for line in script.splitlines():
        line = line.strip()
        if not line:
            continue
        seq += 1
        if m := _ELEM.match(line):
            verb, fam, table, name, body = m.groups()
            schema = _SCHEMA.get((fam, table), {}).get(name)
            if schema is None:
                return None
            items = [i for i in body.split(", ") if i]
            add = verb == "add"
            elems = _elements(schema, items, add)
            head = _str(1, table) + _str(2, name)
            for i in range(0, len(elems), ELEMS_PER_MSG):
                msgs.append(_msg(NFT_MSG_NEWSETELEM if add else NFT_MSG_DELSETELEM,
                                 NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if add else 0), seq,
                                 NFPROTO[fam], head + _nest(3, *elems[i:i + ELEMS_PER_MSG])))
                what[seq] = line
                seq += 1
        elif m := _CHAIN.match(line):
            verb, fam, table, chain = m.groups()
            if verb == "flush":  # every rule of the chain: DELRULE without a handle
                body, typ, flags = _str(1, table) + _str(2, chain), NFT_MSG_DELRULE, 0
            else:
                body = _str(1, table) + _str(3, chain)
                typ, flags = (NFT_MSG_NEWCHAIN, NLM_F_CREATE) if verb == "add" else (NFT_MSG_DELCHAIN, 0)
            msgs.append(_msg(typ, NLM_F_REQUEST | NLM_F_ACK | flags, seq, NFPROTO[fam], body))
            what[seq] = line
        elif m := _DRAW.match(line):
            fam, table, chain, mod, offset = m.groups()
            exprs = _nest(4,  # NFTA_RULE_EXPRESSIONS
                          _nest(1, _str(1, "numgen"), _nest(2, _u32(1, NFT_REG32_00), _u32(2, int(mod)),
                                                            _u32(3, NFT_NG_RANDOM), _u32(4, int(offset, 16)))),
                          _nest(1, _str(1, "meta"), _nest(2, _u32(2, NFT_META_MARK), _u32(3, NFT_REG32_00))))
            msgs.append(_msg(NFT_MSG_NEWRULE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND, seq,
                             NFPROTO[fam], _str(1, table) + _str(2, chain) + exprs))
            what[seq] = line
        else:
            return None
    if not what:
        return None
    msgs.append(_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq + 1, 0, b"", subsys=0, res_id=NFNL_SUBSYS_NFTABLES))
    data = b"".join(msgs)
    return (data, what) if len(data) <= MAX_BATCH else None


def seqs(batch_bytes: bytes) -> list[int]:
    """The sequence numbers of every message of a batch (its begin and end included)."""
    out, off = [], 0
    while off < len(batch_bytes):
        n, _typ, _flags, seq, _pid = struct.unpack_from("=IHHII", batch_bytes, off)
        out.append(seq)
        off += (n + 3) & ~3
    return out


def acked(batch_bytes: bytes) -> list[int]:
    """The sequence numbers of the messages that ask for an ack (what the helper waits for)."""
    out, off = [], 0
    while off < len(batch_bytes):
        n, _typ, flags, seq, _pid = struct.unpack_from("=IHHII", batch_bytes, off)
        if flags & NLM_F_ACK:
            out.append(seq)
        off += (n + 3) & ~3
    return out


def errors(reply: bytes) -> list[tuple[int, int]]:
    """(seq, errno) of every NLMSG_ERROR in a reply buffer; errno 0 is an ack."""
    out, off = [], 0
    while off + 16 <= len(reply):
        n, typ, _flags, _seq, _pid = struct.unpack_from("=IHHII", reply, off)
        if n < 16:
            break
        if typ == NLMSG_ERROR and n >= 36:
            err, = struct.unpack_from("=i", reply, off + 16)
            _n, _t, _f, oseq, _p = struct.unpack_from("=IHHII", reply, off + 20)
            out.append((oseq, -err))
        off += (n + 3) & ~3
    return out
