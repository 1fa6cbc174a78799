"""The nftables words of the two address families, declared once for every renderer. Pure.

Every podnet table is of family `inet` (one table per role serves IPv4 and IPv6); inside,
a rule names the packet's family by its payload keyword (`ip saddr`, `ip6 saddr`) and a set
by its element type.
"""
from __future__ import annotations

TABLE_FAMILY = "inet"
FAMILIES = (4, 6)
IP_KEYWORD = {4: "ip", 6: "ip6"}  # ip saddr / ip6 saddr
ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}  # a set's element type
