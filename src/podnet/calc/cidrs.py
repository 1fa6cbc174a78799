"""CIDR lists as nftables interval sets take them. Pure."""
from __future__ import annotations

import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def collapse(nets: Iterable[Network], fam: int) -> tuple[str, ...]:
    """The networks of family `fam` (4 or 6), merged: the interval sets refuse overlapping
    elements."""
    if fam == 4:
        v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
        return tuple(str(n) for n in ipaddress.collapse_addresses(v4))
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return tuple(str(n) for n in ipaddress.collapse_addresses(v6))
