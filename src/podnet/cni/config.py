"""The network config podnet's plugins accept: parsed, validated, with Calico's key names.

`ipam` section (podnet-ipam): `type`, `datastore` (URL), `nodeName`, `assign_ipv4`,
`assign_ipv6` ("true"/"false"/"auto", default auto: a family is assigned when an enabled
pool of it serves the node), `ipv4_pools`/`ipv6_pools` (names or CIDRs),
`strict_affinity`, `release_empty_blocks_after` (seconds), `routes` (copied to the result,
as host-local does). podnet-cni's own keys: `mtu`, and `datastore`/`nodeName` at top
level as fallbacks for the ipam section. Unknown keys are refused (code 2) so a typo
never silently changes behaviour. Requested addresses, one per family at most, come
from the places host-local reads them: CNI_ARGS `IP=` (comma-separated), `args.cni.ips`
and `runtimeConfig.ips` (the `ips` capability). Imports only the standard library.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Any, Mapping, NamedTuple, Union

from podnet.cni.errors import INVALID_CONFIG, INVALID_ENV, UNSUPPORTED_FIELD, CniError

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# Keys any runtime may put in what one plugin receives (SPEC.md §3) plus podnet-cni's own.
CNI_KEYS = frozenset({
    "cniVersion", "cniVersions", "name", "type", "ipam", "dns", "args", "runtimeConfig",
    "prevResult", "capabilities", "ipMasq", "disableCheck", "disableGC", "loadOnlyInlinedPlugins",
    "cni.dev/valid-attachments", "cni.dev/attachments",
    "mtu", "datastore", "nodeName", "nodename", "log_level", "etcd_endpoints",
})
DNS_KEYS = frozenset({"nameservers", "domain", "search", "options"})
IPAM_KEYS = frozenset({
    "type", "datastore", "nodeName", "nodename", "assign_ipv4", "assign_ipv6", "ipv4_pools",
    "ipv6_pools", "strict_affinity", "release_empty_blocks_after", "routes",
})


class IpamConf(NamedTuple):
    network: str
    datastore: str
    node: str
    assign: dict[int, str]  # family -> "true" | "false" | "auto"
    pools: dict[int, tuple[str, ...]]
    strict_affinity: bool
    release_grace: float | None
    routes: list[dict[str, Any]]
    requested: dict[int, Address]  # family -> the address asked for


def _bad(key: str, value: Any, why: str) -> CniError:
    return CniError(INVALID_CONFIG, f"invalid network config: {key}={value!r}", why)


def _tristate(key: str, value: Any) -> str:
    if value is None:
        return "auto"
    v = str(value).lower()
    if v not in ("true", "false", "auto"):
        raise _bad(key, value, "expected \"true\", \"false\" or \"auto\"")
    return v


def check_keys(conf: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for k, v in conf.items():
        if k not in known and not (not where and k.startswith("cni.dev/")):  # reserved (SPEC.md §3)
            raise CniError(UNSUPPORTED_FIELD, f"unsupported field {where}{k}={v!r} in network config",
                           f"known fields: {', '.join(sorted(known))}")


def parse_ipam(conf: Mapping[str, Any], env: Mapping[str, str] | None = None) -> IpamConf:
    env = os.environ if env is None else env
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise _bad("ipam", ipam, "podnet-ipam needs an \"ipam\" object with \"type\": \"podnet-ipam\"")
    check_keys(ipam, IPAM_KEYS, "ipam.")
    ds = ipam.get("datastore") or conf.get("datastore") or env.get("PODNET_DATASTORE", "")
    if not ds or not isinstance(ds, str) or not ds.startswith(("sqlite:", "etcd", "kubernetes")):
        raise _bad("ipam.datastore", ds, "set a datastore URL: sqlite:///path.db, etcd://host:port "
                                         "or kubernetes://?kubeconfig=PATH")
    node = (ipam.get("nodeName") or ipam.get("nodename") or conf.get("nodeName")
            or conf.get("nodename") or env.get("NODENAME") or os.uname().nodename)
    if not isinstance(node, str) or "/" in node or not node.strip():
        raise _bad("ipam.nodeName", node, "a node name, without '/'")
    pools: dict[int, tuple[str, ...]] = {}
    for v in (4, 6):
        key = f"ipv{v}_pools"
        val = ipam.get(key) or []
        if not isinstance(val, list) or not all(isinstance(x, str) and x for x in val):
            raise _bad(f"ipam.{key}", val, "expected a list of pool names or CIDRs")
        for x in val:
            if "/" in x:
                import ipaddress
                try:
                    net = ipaddress.ip_network(x, strict=True)
                except ValueError as e:
                    raise _bad(f"ipam.{key}", x, f"not a valid CIDR: {e}") from None
                if net.version != v:
                    raise _bad(f"ipam.{key}", x, f"not an IPv{v} CIDR")
        pools[v] = tuple(val)
    assign = {4: _tristate("ipam.assign_ipv4", ipam.get("assign_ipv4")),
              6: _tristate("ipam.assign_ipv6", ipam.get("assign_ipv6"))}
    if assign[4] == assign[6] == "false":
        raise _bad("ipam.assign_ipv4", "false", "with assign_ipv6 also false there is nothing to assign")
    grace = ipam.get("release_empty_blocks_after")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0):
        raise _bad("ipam.release_empty_blocks_after", grace, "expected seconds >= 0")
    routes = ipam.get("routes") or []
    if not isinstance(routes, list) or not all(isinstance(r, dict) and r.get("dst") for r in routes):
        raise _bad("ipam.routes", routes, "expected a list of {\"dst\": CIDR, \"gw\"?: IP}")
    strict = ipam.get("strict_affinity", False)
    if not isinstance(strict, bool):
        raise _bad("ipam.strict_affinity", strict, "expected true or false")
    requested = requested_ips(conf, env.get("CNI_ARGS", ""))
    for v, a in requested.items():
        if assign[v] == "false":
            raise _bad(f"ipam.assign_ipv{v}", "false", f"the address {a} was requested, but this "
                       f"network assigns no IPv{v} address")
    return IpamConf(str(conf.get("name")), ds, str(node), assign, pools, strict,
                    float(grace) if grace is not None else None, routes, requested)


def cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS `K=V;K2=V2` (SPEC.md §2)."""
    out = {}
    for pair in filter(None, text.split(";")):
        k, eq, v = pair.partition("=")
        if not eq or not k:
            raise CniError(INVALID_ENV, f"invalid CNI_ARGS pair {pair!r}", "expected K=V;K2=V2")
        out[k] = v
    return out


def requested_ips(conf: Mapping[str, Any], args_env: str) -> dict[int, Address]:
    """Every address asked for, at most one per family (a pod gets one per family)."""
    found: list[tuple[str, Any]] = []
    ip_arg = cni_args(args_env).get("IP")
    if ip_arg:
        found += [("CNI_ARGS IP", x) for x in ip_arg.split(",")]
    args = conf.get("args")
    cni = args.get("cni") if isinstance(args, Mapping) else None
    rc = conf.get("runtimeConfig")
    for where, items in (("args.cni.ips", cni.get("ips") if isinstance(cni, Mapping) else None),
                         ("runtimeConfig.ips", rc.get("ips") if isinstance(rc, Mapping) else None)):
        if items is None:
            continue
        if not isinstance(items, list):
            raise _bad(where, items, "expected a list of IP addresses")
        found += [(f"{where}[{i}]", x) for i, x in enumerate(items)]
    out: dict[int, tuple[str, Address]] = {}
    for where, text in found:
        try:
            a = ipaddress.ip_interface(str(text).strip()).ip if isinstance(text, str) else None
        except ValueError:
            a = None
        if a is None:
            if where.startswith("CNI_ARGS"):
                raise CniError(INVALID_ENV, f"invalid CNI_ARGS IP={ip_arg!r}", f"{text!r} is not an IP address")
            raise _bad(where, text, "not an IP address (10.244.1.5, fd00::5, or with a /prefix)")
        if a.version in out and out[a.version][1] != a:
            first, had = out[a.version]
            e = _bad(where, str(text), f"a second IPv{a.version} address: {had} is already requested "
                     f"by {first}, and a pod gets one address per family")
            if where.startswith("CNI_ARGS"):
                e.code = INVALID_ENV
            raise e
        out.setdefault(a.version, (where, a))
    return {v: a for v, (_, a) in out.items()}


class NetConf(NamedTuple):
    name: str
    version: str
    mtu: int
    ipam_type: str
    dns: dict[str, Any]


def parse_netconf(conf: Mapping[str, Any]) -> NetConf:
    """podnet-cni's view of the config (the ipam section is the IPAM plugin's business)."""
    check_keys(conf, CNI_KEYS, "")
    mtu = conf.get("mtu", 1500)
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise _bad("mtu", mtu, "expected an integer between 68 and 65535")
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str) or not ipam["type"]:
        raise _bad("ipam", ipam, "expected {\"type\": \"podnet-ipam\", ...} (or another IPAM plugin)")
    if "/" in ipam["type"]:
        raise _bad("ipam.type", ipam["type"], "a plugin name, not a path")
    dns = conf.get("dns") or {}
    if not isinstance(dns, dict):
        raise _bad("dns", dns, "expected {\"nameservers\": [...], \"search\": [...], ...}")
    for key, v in dns.items():
        ok = isinstance(v, str) if key == "domain" else (
            isinstance(v, list) and all(isinstance(x, str) for x in v))
        if key not in DNS_KEYS or not ok:
            raise _bad(f"dns.{key}", v, "dns holds nameservers, search and options (lists of "
                       "strings) and domain (a string)")
    masq = conf.get("ipMasq", False)
    if not isinstance(masq, bool):
        raise _bad("ipMasq", masq, "expected true or false")
    if masq:
        raise CniError(UNSUPPORTED_FIELD, "unsupported field ipMasq=true in network config",
                       "podnet masquerades per IPPool: set natOutgoing on the pool (podnet get ippools)")
    return NetConf(str(conf["name"]), str(conf.get("cniVersion")), mtu, ipam["type"], dns)


def make_netconf(datastore_url: str, node_name: str, dual_stack: bool, mtu: int = 1500,
                 cni_version: str = "1.1.0", name: str = "podnet",
                 dns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The network config the lab kubelet hands podnet-cni for one node."""
    conf: dict[str, Any] = {
        "cniVersion": cni_version, "name": name, "type": "podnet-cni", "mtu": mtu,
        "capabilities": {"ips": True},
        "ipam": {"type": "podnet-ipam", "datastore": datastore_url, "nodeName": node_name,
                 "assign_ipv4": "true", "assign_ipv6": "true" if dual_stack else "false"},
    }
    if dns:
        conf["dns"] = dict(dns)
    return conf


def valid_attachments(conf: Mapping[str, Any]) -> set[tuple[str, str]]:
    """GC's list; the spec-v1.1.0 tag called the key cni.dev/attachments (erratum): accept
    both. Absent means no attachment is valid (what cnitool's `gc` sends)."""
    out: set[tuple[str, str]] = set()
    for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):
        items = conf.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise _bad(key, items, "expected a list of {\"containerID\", \"ifname\"}")
        for it in items:
            if not isinstance(it, dict) or not it.get("containerID") or not it.get("ifname"):
                raise _bad(key, it, "each attachment needs containerID and ifname")
            out.add((str(it["containerID"]), str(it["ifname"])))
    return out
