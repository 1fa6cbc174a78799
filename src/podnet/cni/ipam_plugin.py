"""podnet-ipam's verbs: CNI in, `podnet.ipam.allocator` out. Heavy imports happen here,
lazily, once the skeleton has validated the call.

The handle of an attachment is `<node>/<network>/<containerID>/<ifname>`; DEL releases
what that handle holds (nothing is fine), GC everything of this node and network that
is not in the valid list. ADD of an attachment that already holds addresses is refused
(code 101), as host-local refuses a duplicate allocation.
"""
from __future__ import annotations

from typing import Any

from podnet.cni.config import IpamConf, parse_ipam, valid_attachments
from podnet.cni.errors import (INVALID_CONFIG, IO_FAILURE, NOT_AVAILABLE, TRY_AGAIN_LATER,
                               UNKNOWN_CONTAINER, CniError)
from podnet.cni.result import ipam_result
from podnet.cni.skel import Args

CHECK_FAILED = 100  # plugin-specific: CHECK found state that differs from prevResult
ALREADY_ALLOCATED = 101  # plugin-specific: ADD of an attachment that was never DELeted


_STORES: dict[str, Any] | None = None  # URL -> open store, when a daemon keeps them
_SERVED: str | None = None  # the daemon's one datastore URL


def enable_store_cache(served: str | None) -> None:
    """For the long-running daemon: serve the datastore `served` only (a request naming
    another URL is refused: the daemon runs as root, and a SQLite URL is a file path),
    open it once and keep it."""
    global _STORES, _SERVED
    _SERVED = served
    if _STORES is None:
        _STORES = {}


class _Session:
    """An open store + allocator for one call; closes the store on exit."""

    def __init__(self, ic: IpamConf, status: bool = False):
        from podnet.datastore.interface import DatastoreError, open_datastore
        from podnet.ipam.allocator import DEFAULT_RELEASE_GRACE, Allocator
        if _STORES is not None and ic.datastore != _SERVED:
            raise CniError(INVALID_CONFIG, f"this node's podnet CNI daemon does not serve "
                           f"datastore {ic.datastore}",
                           f"it serves {_SERVED} only" if _SERVED else "it was started without --datastore")
        try:
            if _STORES is not None:
                if ic.datastore not in _STORES:
                    _STORES[ic.datastore] = open_datastore(ic.datastore)
                self.store = _STORES[ic.datastore]
            else:
                self.store = open_datastore(ic.datastore)
        except Exception as e:  # DatastoreError, OSError, sqlite3 and etcd client errors alike
            raise CniError(NOT_AVAILABLE if status else TRY_AGAIN_LATER,
                           f"cannot open datastore {ic.datastore}", str(e)) from None
        grace = DEFAULT_RELEASE_GRACE if ic.release_grace is None else ic.release_grace
        self.alloc = Allocator(self.store, ic.node, release_grace=grace)
        self.status = status

    def __enter__(self) -> "_Session":
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if _STORES is None:
            try:
                self.store.close()
            except Exception:
                pass
        if ev is not None and not isinstance(ev, CniError):
            _translate(ev, self.status)


def _translate(e: BaseException, status: bool) -> None:
    from podnet.datastore.interface import DatastoreError, Unavailable
    from podnet.ipam.allocator import IpamError
    if isinstance(e, IpamError):
        raise CniError(NOT_AVAILABLE if status else e.code, str(e)) from None
    if isinstance(e, Unavailable):
        raise CniError(NOT_AVAILABLE if status else TRY_AGAIN_LATER, "datastore unreachable", str(e)) from None
    if isinstance(e, DatastoreError):
        raise CniError(NOT_AVAILABLE if status else IO_FAILURE, "datastore error", str(e)) from None


def _handle(a: Args, ic: IpamConf) -> Any:
    from podnet.ipam.blocks import Handle
    return Handle(ic.node, ic.network, a.container_id, a.ifname)


def _families(s: _Session, ic: IpamConf) -> tuple[int, ...]:
    out = []
    for v in (4, 6):
        if (ic.assign[v] == "true" or v in ic.requested
                or (ic.assign[v] == "auto" and s.alloc.pools(v, ic.pools[v]))):
            out.append(v)
    if not out:
        raise CniError(INVALID_CONFIG, f"no enabled IPPool serves node {ic.node!r}",
                       "create an IPPool (podnet apply) or set ipam.assign_ipv4/assign_ipv6")
    return tuple(out)


def add(a: Args) -> dict[str, Any]:
    from podnet.ipam.allocator import Request
    from podnet.ipam.cidr import host_cidr
    ic = parse_ipam(a.conf, a.env)
    with _Session(ic) as s, s.alloc.one_read():  # pools and blocks read once per ADD
        h = _handle(a, ic)
        have = s.alloc.addresses_of(h)
        if have:
            # ADD twice without DEL is a runtime bug (SPEC.md §3); answering with the same
            # addresses would let the failing ADD's undo release a live pod's addresses.
            raise CniError(ALREADY_ALLOCATED, f"container {a.container_id} interface {a.ifname} "
                           f"already holds {', '.join(map(str, have))} in network {ic.network}",
                           "DEL the attachment before adding it again")
        got = s.alloc.assign(Request(h, _families(s, ic), ic.pools, ic.strict_affinity, ic.requested))
        return ipam_result(a.version, [host_cidr(g.address) for g in got], ic.routes)


def delete(a: Args) -> None:
    ic = parse_ipam(a.conf, a.env)
    with _Session(ic) as s:
        s.alloc.release(_handle(a, ic))
    return None


def check(a: Args) -> None:
    ic = parse_ipam(a.conf, a.env)
    with _Session(ic) as s:
        have = {str(x) for x in s.alloc.addresses_of(_handle(a, ic))}
    if not have:
        raise CniError(UNKNOWN_CONTAINER, f"no address allocated to container {a.container_id} "
                       f"interface {a.ifname} on node {ic.node} in network {ic.network}")
    from podnet.cni.kcheck import own_ips
    prev = a.conf.get("prevResult") or {}
    # in a chain, earlier plugins' addresses (loopback's 127.0.0.1) are not ours to hold
    for ip in own_ips(prev, a.ifname) if isinstance(prev, dict) else []:
        addr = str(ip.get("address", "")).split("/")[0]
        if addr and addr not in have:
            raise CniError(CHECK_FAILED, f"address {addr} of prevResult is not allocated to "
                           f"container {a.container_id} interface {a.ifname}",
                           f"allocated: {sorted(have)}")
    return None


def status(a: Args) -> None:
    from podnet.ipam.usage import pool_usage
    ic = parse_ipam(a.conf, a.env)
    with _Session(ic, status=True) as s:
        try:
            fams = _families(s, ic)
        except CniError as e:
            raise CniError(NOT_AVAILABLE, e.msg, e.details) from None
        for v in fams:
            pools = s.alloc.pools(v, ic.pools[v])
            if not pools:
                raise CniError(NOT_AVAILABLE, f"no enabled IPv{v} IPPool serves node {ic.node!r}")
            if not any(pool_usage(s.store, p.name)[1] > 0 for p in pools):
                raise CniError(NOT_AVAILABLE, f"every IPv{v} pool for node {ic.node!r} is full",
                               f"pools: {[p.name for p in pools]}")
    return None


def gc(a: Args) -> None:
    ic = parse_ipam(a.conf, a.env)
    valid = valid_attachments(a.conf)
    with _Session(ic) as s:
        s.alloc.gc(ic.network, valid)
    return None


HANDLERS = {"ADD": add, "DEL": delete, "CHECK": check, "STATUS": status, "GC": gc}
