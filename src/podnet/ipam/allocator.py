"""The store-backed allocator: Calico's block IPAM over compare-and-swap.

Every write is a CAS on the block's revision (or a create, for a new block), retried
from a fresh read when another writer won; so two nodes, or two ADDs on one node, can
never take the same address. Order of preference for a new address (per family):
a free address in a block affine to this node; else claim a new block for the node;
else (unless strict affinity) borrow a free address from another node's block. Within a
block, an address released less than `quarantine` seconds ago comes last (blocks.py).

A request may name the address it wants per family (CNI_ARGS IP=, args.cni.ips,
runtimeConfig.ips; a pod's `podnet.io/ipAddrs` annotation in the lab). It must lie in an
enabled pool that serves the node; it is taken from the block that holds it (the node's,
a new block claimed for the node, or, unless strict affinity, another node's: borrowed),
and never from its holder: an address in use is refused, as Calico and host-local do.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from podnet.api.objects import Resource
from podnet.datastore.interface import AlreadyExists, Conflict, Datastore, NotFound
from podnet.datastore.util import RetriesExhausted, update_with_retry
from podnet.ipam.blocks import KIND, QUARANTINE, Block, Handle, new_block
from podnet.ipam.cidr import (Address, Network, block_containing, block_count, nth_block, ordinal_of,
                              reserved_ordinals)
from podnet.ipam.pools import Pool, usable_pools

MAX_RETRIES = 200
DEFAULT_RELEASE_GRACE = 300.0  # seconds an empty block stays with its node


class IpamError(Exception):
    """Base of IPAM errors; `code` is the CNI error code the plugin answers with."""
    code = 999


class NoUsablePool(IpamError):
    code = 7  # invalid network configuration: it asks for a family nobody serves


class PoolsExhausted(IpamError):
    code = 11  # try again later: DELs free addresses


class TooMuchContention(IpamError):
    code = 11


class RequestedNotUsable(IpamError):
    code = 7  # the requested address is outside what the config and pools allow


class RequestedInUse(IpamError):
    code = 11  # try again later: the holder's DEL frees it


class CorruptState(IpamError):
    code = 5  # the stored IPAM state cannot be read: nothing is allocated until it is fixed


@dataclass(frozen=True)
class Assigned:
    address: Address
    block: str  # block CIDR
    pool: str
    borrowed: bool


@dataclass(frozen=True)
class Request:
    handle: Handle
    versions: tuple[int, ...]  # families wanted, e.g. (4,) or (4, 6)
    pools: dict[int, tuple[str, ...]] | None = None  # per family: names/CIDRs allowed
    strict_affinity: bool = False
    requested: Mapping[int, Address] = field(default_factory=dict)  # per family: this address


@dataclass
class _Reads:
    """What one call has read: pools once, blocks once (again only after a lost CAS)."""
    pool_items: list[Resource] | None = None
    pools: dict[tuple[int, tuple[str, ...]], list[Pool]] = field(default_factory=dict)
    blocks: dict[str, Block] | None = None  # by name, kept current with our own writes


class Allocator:
    def __init__(self, store: Datastore, node: str, clock: Callable[[], float] = time.time,
                 release_grace: float = DEFAULT_RELEASE_GRACE, max_retries: int = MAX_RETRIES,
                 quarantine: float = QUARANTINE):
        self.store = store
        self.quarantine = quarantine
        self.node = node
        self.clock = clock
        self.release_grace = release_grace
        self.max_retries = max_retries
        self._node_labels: dict[str, str] | None = None
        self._node_read = False
        self._reads: _Reads | None = None

    @contextmanager
    def one_read(self) -> Iterator[None]:
        """Inside, the steps of one call (ADD: check the handle, pick families, assign)
        share one listing of pools and one decoded listing of blocks. Safe because every
        write is still a CAS on the revision read: a stale block only costs a conflict,
        and a conflict rereads the blocks."""
        outer = self._reads
        self._reads = _Reads() if outer is None else outer
        try:
            yield
        finally:
            self._reads = outer

    # ---- reads ------------------------------------------------------------------------
    def blocks(self) -> list[Block]:
        reads = self._reads
        if reads is not None and reads.blocks is not None:
            return list(reads.blocks.values())
        out = []
        for r in self.store.list(KIND).items:
            try:
                out.append(Block.from_resource(r))
            except (ValueError, TypeError, AttributeError) as e:
                raise CorruptState(f"IPAMBlock {r.name} in the datastore is malformed: {e}; "
                                   f"fix or delete it (podnet ipam show lists blocks)") from None
        if reads is not None:
            reads.blocks = {b.name: b for b in out}
        return out

    def _wrote(self, block: Block, res: Resource) -> None:
        """Keep the call's blocks current with what we just stored (new revision)."""
        if self._reads is not None and self._reads.blocks is not None:
            self._reads.blocks[block.name] = replace(block, revision=res.resource_version)

    def _forget_blocks(self) -> None:
        if self._reads is not None:
            self._reads.blocks = None

    def pools(self, version: int, wanted: Sequence[str] = ()) -> list[Pool]:
        reads = self._reads
        key = (version, tuple(wanted))
        if reads is not None and key in reads.pools:
            return list(reads.pools[key])
        if reads is not None and reads.pool_items is not None:
            items = reads.pool_items
        else:
            items = self.store.list("IPPool").items
            if reads is not None:
                reads.pool_items = items
        if any(str(r.spec.get("nodeSelector") or "all()").strip() not in ("all()", "")
               for r in items):
            labels = self.node_labels()
        else:
            labels = {}
        out = usable_pools(items, version, labels, wanted)
        if reads is not None:
            reads.pools[key] = out
        return list(out)

    def node_labels(self) -> dict[str, str] | None:
        if not self._node_read:
            try:
                self._node_labels = self.store.get("Node", "", self.node).labels
            except NotFound:
                self._node_labels = None
            self._node_read = True
        return self._node_labels

    # ---- assign -----------------------------------------------------------------------
    def assign(self, req: Request) -> list[Assigned]:
        """One address per family in `req.versions`; all or nothing."""
        done: list[Assigned] = []
        try:
            for v in req.versions:
                wanted = (req.pools or {}).get(v, ())
                ip = req.requested.get(v)
                done.append(self._assign_one(str(req.handle), v, wanted, req.strict_affinity) if ip is None
                            else self._assign_requested(str(req.handle), ip, wanted, req.strict_affinity))
        except BaseException:
            if done:
                self._forget_blocks()
                self.release(req.handle)
            raise
        return done

    def _assign_one(self, handle: str, version: int, wanted: Sequence[str],
                    strict: bool) -> Assigned:
        for attempt in range(self.max_retries):
            pools = self.pools(version, wanted)
            if not pools:
                what = f" among {list(wanted)}" if wanted else ""
                raise NoUsablePool(f"no enabled IPv{version} IPPool{what} serves node "
                                   f"{self.node!r}: create one or fix the CNI config's "
                                   f"ipv{version}_pools/assign_ipv{version}")
            by_name = {p.name: p for p in pools}
            blocks = [b for b in self.blocks()
                      if b.pool in by_name and b.cidr.version == by_name[b.pool].version
                      and b.cidr.subnet_of(by_name[b.pool].cidr)]  # type: ignore[arg-type]
            try:
                got = (self._from_own_blocks(handle, blocks, by_name)
                       or self._claim_block(handle, pools, blocks)
                       or (None if strict else self._borrow(handle, blocks, by_name)))
            except (Conflict, AlreadyExists, NotFound):
                # Someone wrote first: back off a little (more with each loss) and reread.
                self._forget_blocks()
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
                continue
            if got is None:
                raise PoolsExhausted(
                    f"no free IPv{version} address for node {self.node!r} in pools "
                    f"{sorted(by_name)}" + (" (strict affinity: no borrowing)" if strict else "")
                    + ": delete pods or add an IPPool")
            return got
        raise TooMuchContention(f"gave up after {self.max_retries} compare-and-swap conflicts "
                                f"allocating IPv{version} for {handle}; try again")

    def _assign_requested(self, handle: str, ip: Address, wanted: Sequence[str], strict: bool) -> Assigned:
        for attempt in range(self.max_retries):
            pools = self.pools(ip.version, wanted)
            pool = next((p for p in pools if ip in p.cidr), None)
            if pool is None:
                what = f" among {list(wanted)}" if wanted else ""
                raise RequestedNotUsable(
                    f"requested address {ip} is in no enabled IPv{ip.version} IPPool{what} that serves "
                    f"node {self.node!r} (usable: {', '.join(f'{p.name} {p.cidr}' for p in pools) or 'none'})")
            blocks = self.blocks()
            block = next((b for b in blocks if ip in b.cidr), None)
            cidr = block.cidr if block else block_containing(pool.cidr, pool.block_size, ip)
            if ordinal_of(cidr, ip) in reserved_ordinals(pool.cidr, cidr):
                raise RequestedNotUsable(f"requested address {ip} is the network or broadcast address "
                                         f"of IPPool {pool.name} ({pool.cidr}), which is never handed out")
            try:
                got = self._take_requested(handle, ip, pool, block, cidr, blocks, strict)
            except (Conflict, AlreadyExists, NotFound):
                self._forget_blocks()
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
                continue
            return got
        raise TooMuchContention(f"gave up after {self.max_retries} compare-and-swap conflicts "
                                f"allocating the requested {ip} for {handle}; try again")

    def _take_requested(self, handle: str, ip: Address, pool: Pool, block: Block | None,
                        cidr: Network, blocks: list[Block], strict: bool) -> Assigned:
        o = ordinal_of(cidr, ip)
        if block is None:
            clash = next((b for b in blocks if b.cidr.overlaps(cidr)), None)  # pool's blockSize changed
            if clash is not None:
                raise RequestedNotUsable(f"requested address {ip}: its block {cidr} would overlap "
                                         f"block {clash.cidr} of node {clash.node or '(none)'}")
            new = new_block(cidr, pool.name, self.node).allocate(o, handle)
            self._wrote(new, self.store.create(new.to_resource()))
            return Assigned(ip, str(cidr), pool.name, False)
        if block.node != self.node and strict:
            raise RequestedNotUsable(f"requested address {ip} is in block {cidr} of node "
                                     f"{block.node or '(none)'}; strict affinity forbids borrowing it")
        holder = block.allocations.get(o)
        if holder is not None:
            raise RequestedInUse(f"requested address {ip} is already allocated to {holder}")
        new = block.allocate(o, handle)
        self._wrote(new, self.store.update(new.to_resource(), block.revision))
        return Assigned(ip, str(cidr), block.pool, block.node != self.node)

    def _take(self, handle: str, block: Block, pool: Pool, borrowed: bool) -> Assigned | None:
        o = block.first_free(reserved_ordinals(pool.cidr, block.cidr), self.clock(), self.quarantine)
        if o is None:
            return None
        new = block.allocate(o, handle)
        self._wrote(new, self.store.update(new.to_resource(), block.revision))
        return Assigned(block.cidr[o], str(block.cidr), pool.name, borrowed)

    def _from_own_blocks(self, handle: str, blocks: list[Block],
                         pools: dict[str, Pool]) -> Assigned | None:
        for b in sorted((b for b in blocks if b.node == self.node), key=lambda b: int(b.cidr.network_address)):
            got = self._take(handle, b, pools[b.pool], False)
            if got:
                return got
        return None

    def _claim_block(self, handle: str, pools: Iterable[Pool], blocks: list[Block]) -> Assigned | None:
        taken = {b.cidr for b in blocks}
        for pool in pools:
            n = block_count(pool.cidr, pool.block_size)
            # Start the search at a node-dependent place so nodes claiming at once rarely
            # race for the same block; wrap around to find any free one.
            start = (hash_node(self.node) % n) if n > 1 else 0
            for i in range(n):
                cidr = nth_block(pool.cidr, pool.block_size, (start + i) % n)
                if cidr in taken:
                    continue
                b = new_block(cidr, pool.name, self.node)
                o = b.first_free(reserved_ordinals(pool.cidr, cidr))
                if o is None:
                    continue  # a /32 block that is the pool's network address
                new = b.allocate(o, handle)
                self._wrote(new, self.store.create(new.to_resource()))
                return Assigned(cidr[o], str(cidr), pool.name, False)
        return None

    def _borrow(self, handle: str, blocks: list[Block], pools: dict[str, Pool]) -> Assigned | None:
        for b in blocks:
            if b.node != self.node:
                got = self._take(handle, b, pools[b.pool], True)
                if got:
                    return got
        return None

    # ---- release ----------------------------------------------------------------------
    def release(self, handle: Handle) -> list[Address]:
        """Free every address of `handle`; an unknown handle frees nothing and is fine."""
        text = str(handle)
        return self._release_where(lambda _: lambda h: h == text)

    def gc(self, network: str, valid: set[tuple[str, str]]) -> list[Address]:
        """Free this node's allocations of `network` whose (containerID, ifname) is not valid."""
        def stale(h: str) -> bool:
            p = Handle.parse(h)
            return (p.node == self.node and p.network == network
                    and (p.container_id, p.ifname) not in valid)
        return self._release_where(lambda _: stale)

    def release_held(self, held: Mapping[Address, str]) -> list[Address]:
        """Free each address only while the handle it maps to still holds it (`podnet ipam
        release`): an address freed and handed to a new pod meanwhile is kept. A handle holds
        at most one address per block (one per family), so (block, handle) names the address."""
        def match_in(block: Block) -> Callable[[str], bool]:
            handles = {h for a, h in held.items() if a in block.cidr}
            return handles.__contains__
        return self._release_where(match_in)

    def _release_where(self, match_in: Callable[[Block], Callable[[str], bool]]) -> list[Address]:
        """Free, in each block, the allocations whose handle `match_in(block)` accepts."""
        self._forget_blocks()  # a release reads fresh and leaves no cached blocks behind
        try:
            return self._release_fresh(match_in)
        finally:
            self._forget_blocks()

    def _release_fresh(self, match_in: Callable[[Block], Callable[[str], bool]]) -> list[Address]:
        freed: list[Address] = []
        now = self.clock()
        final: list[Block] = []
        for listed in self.blocks():
            addrs: list[Address] = []

            def release(cur: Resource) -> Resource | None:
                block = Block.from_resource(cur)
                new, got = block.release(match_in(block), now, self.quarantine)
                addrs[:] = got
                return new.to_resource() if got else None
            try:
                stored = update_with_retry(self.store, KIND, "", listed.name, release,
                                           self.max_retries, first=listed.to_resource())
            except NotFound:
                continue
            except RetriesExhausted:
                raise TooMuchContention(f"gave up releasing addresses in block {listed.cidr}") from None
            freed.extend(addrs)
            final.append(Block.from_resource(stored))
        self.release_empty_blocks(final)
        return freed

    def release_empty_blocks(self, blocks: list[Block] | None = None) -> list[str]:
        """Give back this node's blocks that have been empty for the grace period."""
        now = self.clock()
        out = []
        for b in blocks if blocks is not None else self.blocks():
            if (b.node == self.node and not b.allocations and b.empty_since is not None
                    and now - b.empty_since >= self.release_grace):
                try:
                    self.store.delete(KIND, "", b.name, b.revision)
                    out.append(str(b.cidr))
                except (Conflict, NotFound):
                    pass  # reused or released meanwhile: fine either way
        return out

    def addresses_of(self, handle: Handle) -> list[Address]:
        text = str(handle)
        return [a for b in self.blocks() for a in b.addresses_of(lambda h: h == text)]


def hash_node(node: str) -> int:
    """A stable (not per-process salted) hash of a node name."""
    h = 2166136261
    for ch in node.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def block_resources(store: Datastore) -> list[Resource]:
    return store.list(KIND).items
