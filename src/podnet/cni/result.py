"""Result documents (SPEC.md §5), in the version the config asked for. Pure, stdlib only.

1.0.0 dropped `ips[].version`; 0.4.0 results carry it. Everything else we emit has the
same shape in 0.4.0, 1.0.0 and 1.1.0.
"""
from __future__ import annotations

from typing import Any


def convert(result: dict[str, Any], version: str) -> dict[str, Any]:
    out = dict(result)
    out["cniVersion"] = version
    ips = []
    for ip in result.get("ips") or []:
        ip = dict(ip)
        if version.startswith("0."):
            ip["version"] = "6" if ":" in str(ip.get("address", "")) else "4"
        else:
            ip.pop("version", None)
        ips.append(ip)
    out["ips"] = ips
    return out


def ipam_result(version: str, addresses: list[str], routes: list[dict[str, Any]]) -> dict[str, Any]:
    """What an IPAM plugin returns: no interfaces, no ips[].interface (the main plugin fills them)."""
    return convert({"ips": [{"address": a} for a in addresses], "routes": list(routes), "dns": {}}, version)


def ip_family(cidr: str) -> int:
    return 6 if ":" in cidr else 4
