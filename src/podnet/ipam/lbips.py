"""Load-balancer addresses (issue 16 §2): handed out from IPPools whose allowedUses is
LoadBalancer (Calico's LoadBalancer IPAM), one per family of the Service, by compare-and-
swap in the datastore like ClusterIPs: the allocation is a `ServiceIPAllocation` named by
the address, with `spec.use: LoadBalancer` and the pool, created with `create()`, so two
controllers can never hand out the same address. Deleting the Service frees it
(serviceips.release_service: everything the Service owns); the controller frees it when
the Service stops being a LoadBalancer of podnet's class.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from podnet.api.objects import IPPool, Resource
from podnet.datastore.interface import Datastore
from podnet.ipam.serviceips import IP_KIND, _claim, _free, _owner

USE = "LoadBalancer"
MAX_SCAN = 1 << 16  # addresses looked at per pool and request


def lb_pools(pools: Iterable[Resource], family: int) -> list[IPPool]:
    """Enabled LoadBalancer pools of the family, by name."""
    out = []
    for p in pools:
        if not isinstance(p, IPPool) or p.disabled or not p.for_load_balancers:
            continue
        try:
            if p.family == family:
                out.append(p)
        except ValueError:
            continue
    return sorted(out, key=lambda p: p.name)


def held_lb_ips(store: Datastore, svc: Resource) -> dict[str, Resource]:
    """address -> allocation, of the load-balancer addresses the Service holds."""
    return {o.name: o for o in store.list(IP_KIND).items
            if o.spec.get("use") == USE and o.spec.get("service") == _owner(svc)}


def in_pools(ip: str, pools: Iterable[IPPool]) -> bool:
    a = ipaddress.ip_address(ip)
    return any(a.version == p.family and a in p.network for p in pools)


def claim_lb_ip(store: Datastore, svc: Resource, pools: Iterable[IPPool]) -> str | None:
    """The first free address of the first pool that has one (network and broadcast
    addresses of an IPv4 pool wider than /31 left out); None when every pool is full."""
    taken = {o.name for o in store.list(IP_KIND).items}
    for pool in pools:
        net = pool.network
        skip_ends = net.version == 4 and net.prefixlen < 31
        for i, a in enumerate(net):
            if i >= MAX_SCAN:
                break
            if skip_ends and (a == net.network_address or a == net.broadcast_address):
                continue
            ip = str(a)
            if ip in taken:
                continue
            if _claim(store, IP_KIND, ip, svc, {"use": USE, "pool": pool.name}) is None:
                return ip
    return None


def release_lb_ip(store: Datastore, svc: Resource, ip: str) -> None:
    _free(store, IP_KIND, ip, svc)
