"""CIDR arithmetic for IPAM: pools cut into blocks, addresses by ordinal. Pure.

Everything is integer arithmetic on `ipaddress` networks so that IPv4 and IPv6 share one
code path. Imports only the standard library.
"""
from __future__ import annotations

import ipaddress
from typing import Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class CidrError(ValueError):
    """A CIDR or block size that IPAM cannot use; the message names the value."""


def parse_network(text: str, what: str = "cidr") -> Network:
    """A network in canonical form; host bits set is an error (Calico refuses them too)."""
    try:
        return ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as e:
        raise CidrError(f"{what}={text!r} is not a valid CIDR: {e}") from None


def check_block_size(pool: Network, block_size: int) -> None:
    """Calico's limits: a block is at least as long as its pool's prefix and leaves at
    least one address (/32, /128 allowed for tiny test pools)."""
    if not isinstance(block_size, int) or isinstance(block_size, bool):
        raise CidrError(f"blockSize={block_size!r} must be an integer")
    if block_size < pool.prefixlen or block_size > pool.max_prefixlen:
        raise CidrError(f"blockSize={block_size} must be between the pool prefix /{pool.prefixlen} "
                        f"and /{pool.max_prefixlen} for pool {pool}")


def block_count(pool: Network, block_size: int) -> int:
    return 1 << (block_size - pool.prefixlen)


def block_addresses(block_size: int, version: int) -> int:
    return 1 << ((32 if version == 4 else 128) - block_size)


def nth_block(pool: Network, block_size: int, n: int) -> Network:
    """The n-th block (0-based) of `pool`."""
    if not 0 <= n < block_count(pool, block_size):
        raise IndexError(f"block {n} is outside pool {pool} cut into /{block_size}")
    base = int(pool.network_address) + n * block_addresses(block_size, pool.version)
    return _net(pool.version)((base, block_size))


def block_index(pool: Network, block_size: int, ip: Address) -> int:
    """Which block of `pool` holds `ip` (ValueError when outside)."""
    if ip not in pool:
        raise ValueError(f"{ip} is not in pool {pool}")
    return (int(ip) - int(pool.network_address)) // block_addresses(block_size, pool.version)


def block_containing(pool: Network, block_size: int, ip: Address) -> Network:
    """The block of `pool` (cut into /block_size) that holds `ip` (ValueError when outside)."""
    return nth_block(pool, block_size, block_index(pool, block_size, ip))


def address_at(block: Network, ordinal: int) -> Address:
    if not 0 <= ordinal < block.num_addresses:
        raise IndexError(f"ordinal {ordinal} is outside block {block}")
    return _addr(block.version)(int(block.network_address) + ordinal)


def ordinal_of(block: Network, ip: Address) -> int:
    if ip not in block:
        raise ValueError(f"{ip} is not in block {block}")
    return int(ip) - int(block.network_address)


def reserved_ordinals(pool: Network, block: Network) -> frozenset[int]:
    """Addresses of `block` never handed out. Pod addresses are /32 and /128 routed to the
    veth, so a block is not a broadcast domain and its own first/last addresses are fine
    (Calico hands them out too). We only keep the POOL's network address (and for IPv4 its
    broadcast address) out: software that still thinks in subnets treats those specially."""
    out = set()
    if pool.num_addresses > 1 and pool.network_address in block:
        out.add(ordinal_of(block, pool.network_address))
    if pool.version == 4 and pool.num_addresses > 2 and pool.broadcast_address in block:
        out.add(ordinal_of(block, pool.broadcast_address))
    return frozenset(out)


def _net(version: int) -> type:
    # ipaddress.ip_network(int) guesses IPv4 for small integers; be explicit.
    return ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network


def _addr(version: int) -> type:
    return ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address


def block_name(block: Network) -> str:
    """The datastore name of a block: Calico's form, `10-244-0-64-26`."""
    return str(block).replace(".", "-").replace(":", "-").replace("/", "-")


def host_cidr(ip: Address) -> str:
    """The single-address CIDR a pod gets: /32 or /128."""
    return f"{ip}/{ip.max_prefixlen}"
