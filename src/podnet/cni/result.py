"""Result documents (SPEC.md §5), in the version the config asked for. Pure: stdlib and
cni.errors only.

1.0.0 dropped `ips[].version`; 0.4.0 results carry it. Everything else we emit has the
same shape in 0.4.0, 1.0.0 and 1.1.0.
"""
from __future__ import annotations

from typing import Any

from podnet.cni.errors import INVALID_CONFIG, CniError


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


def chain(prev: Any, own: dict[str, Any]) -> dict[str, Any]:
    """ADD's result when the runtime gave a prevResult (an earlier plugin of the chain):
    that result, with our interfaces appended and our ips' `interface` indexes shifted past
    its own, our routes after its routes, our dns if we have one, else its (SPEC.md §2 ADD:
    a plugin MUST pass prevResult on)."""
    if prev is None:
        return own
    if not isinstance(prev, dict):
        raise CniError(INVALID_CONFIG, f"invalid prevResult {prev!r}", "expected a result object")
    for key in ("interfaces", "ips", "routes"):
        if not isinstance(prev.get(key) or [], list):
            raise CniError(INVALID_CONFIG, f"invalid prevResult.{key}={prev[key]!r}", "expected a list")
    shift = len(prev.get("interfaces") or [])
    out = {k: v for k, v in prev.items() if k != "cniVersion"}
    out["interfaces"] = list(prev.get("interfaces") or []) + own["interfaces"]
    out["ips"] = list(prev.get("ips") or []) + [
        {**ip, "interface": ip["interface"] + shift} if "interface" in ip else ip for ip in own["ips"]]
    routes = list(prev.get("routes") or [])
    out["routes"] = routes + [r for r in own["routes"] if r not in routes]
    out["dns"] = own.get("dns") or prev.get("dns") or {}
    return out


def ip_family(cidr: str) -> int:
    return 6 if ":" in cidr else 4
