"""Build the zone again and again, paying for what changed. Pure.

A zone is the union of one *part* per Service (its names, SRV owners, reverse names; see
`records.service_part`) and a few zone-wide names (apex, dns-version, namespaces). The
builder keeps every part, which parts own each name, and indexes from Service to its
EndpointSlices and to the pods naming it as subdomain. Given the set of objects that
changed since the last build, it recomputes only the parts of the Services they touch
and patches the merged name table; the zone handed out is a (C-level) copy of that table
plus the zone-wide names. Without a change set (first build, relist) it rebuilds all.

Parts are shared, never copied: an unchanged Service's RRset dicts are the very same
objects in the next zone, which is how the server knows which cached answers to keep.
A name owned by two parts (two Services with one IP: a shared PTR) gets a merged copy.
"""
from __future__ import annotations

from podnet.api.objects import EndpointSlice, Pod, Service
from podnet.calc.model import ClusterState
from podnet.dns.records import (DNS_SERVICE, NS, POD_MODES, RR, SCHEMA_VERSION, SOA, TXT,
                                VERSION_TTL, Zone, addr_rr, namespaces_of, pod_ips,
                                service_part, slices_by_service, subdomain_pods, valid_name,
                                wire_name)

SvcKey = tuple[str, str]          # (namespace, name) of a Service
ObjKey = tuple[str, str, str]     # (kind, namespace, name)
RRsets = dict[int, list[RR]]


class ZoneBuilder:
    def __init__(self, origin: str = "cluster.local", ttl: int = 30, pods_mode: str = "insecure"):
        if pods_mode not in POD_MODES:
            raise ValueError(f"pods mode {pods_mode!r}: must be one of {', '.join(POD_MODES)}")
        if not valid_name(origin.strip(".")) or len(origin.strip(".")) > 200:
            raise ValueError(f"zone {origin!r}: not a valid DNS name (labels of 1..63 characters)")
        self.origin, self.ttl, self.pods_mode = origin.strip(".").lower(), ttl, pods_mode
        self._built = False
        self._parts: dict[SvcKey, Zone] = {}
        self._owners: dict[str, list[SvcKey]] = {}   # name -> the parts that have it
        self._names: dict[str, RRsets] = {}          # merged names of all parts
        self._wire: dict[bytes, RRsets] = {}         # the same, keyed by wire form (Zone.wire)
        self._additional: dict[str, list[RR]] = {}
        self._slices: dict[SvcKey, dict[str, EndpointSlice]] = {}
        self._slice_owner: dict[SvcKey, SvcKey] = {}  # (ns, slice name) -> its Service
        self._sub_pods: dict[SvcKey, dict[str, Pod]] = {}
        self._pod_owner: dict[SvcKey, SvcKey] = {}    # (ns, pod name) -> (ns, subdomain)

    # ---- public -------------------------------------------------------------------------
    def build(self, state: ClusterState, serial: int = 1, changed: set[ObjKey] | None = None) -> Zone:
        """The zone for `state`. `changed`: keys of objects that changed since the previous
        call (None: unknown, rebuild everything)."""
        if changed is None or not self._built:
            self._full(state)
        else:
            self._incremental(state, changed)
        self._built = True
        return self._assemble(state, serial)

    # ---- parts --------------------------------------------------------------------------
    def _part(self, key: SvcKey, svc: Service) -> Zone:
        slices = [self._slices[key][n] for n in sorted(self._slices.get(key, {}))]
        pods = tuple(self._sub_pods[key][n] for n in sorted(self._sub_pods.get(key, {})))
        return service_part(self.origin, self.ttl, svc, slices, pods)

    def _full(self, state: ClusterState) -> None:
        self._parts, self._owners, self._names, self._additional, self._wire = {}, {}, {}, {}, {}
        self._slices = {k: {sl.name: sl for sl in v} for k, v in slices_by_service(state).items()}
        self._slice_owner = {(ns, n): k for k, v in self._slices.items() for (ns, n) in
                             ((sl.namespace, sl.name) for sl in v.values())}
        self._sub_pods = {k: {p.name: p for p in v} for k, v in subdomain_pods(state).items()}
        self._pod_owner = {(p.namespace, p.name): k for k, v in self._sub_pods.items() for p in v.values()}
        for key, svc in sorted(state.objects.get("Service", {}).items()):
            if isinstance(svc, Service):
                self._set_part(key, self._part(key, svc))

    def _incremental(self, state: ClusterState, changed: set[ObjKey]) -> None:
        affected: set[SvcKey] = set()
        for kind, ns, name in changed:
            if kind == "Service":
                affected.add((ns, name))
            elif kind == "EndpointSlice":
                self._reindex(self._slices, self._slice_owner, (ns, name), state.get(kind, ns, name),
                              lambda o: o.service_name if isinstance(o, EndpointSlice) else "", affected)
            elif kind == "Pod":
                self._reindex(self._sub_pods, self._pod_owner, (ns, name), state.get(kind, ns, name),
                              lambda o: o.subdomain if isinstance(o, Pod) else "", affected)
        for key in sorted(affected):
            svc = state.get("Service", *key)
            if isinstance(svc, Service):
                self._set_part(key, self._part(key, svc))
            else:
                self._set_part(key, None)

    @staticmethod
    def _reindex(index: dict, owner_of: dict, okey: SvcKey, obj: object, owner_name,
                 affected: set[SvcKey]) -> None:
        """Move object `okey` in an index by Service: out of its old Service, into its new one."""
        old = owner_of.pop(okey, None)
        if old is not None:
            index.get(old, {}).pop(okey[1], None)
            affected.add(old)
        target = owner_name(obj) if obj is not None else ""
        if target:
            new = (okey[0], target)
            index.setdefault(new, {})[okey[1]] = obj
            owner_of[okey] = new
            affected.add(new)

    def _set_part(self, key: SvcKey, part: Zone | None) -> None:
        touched: list[str] = []
        old = self._parts.pop(key, None)
        if old is not None:
            for name in old.rrsets:
                owners = self._owners.get(name, [])
                if key in owners:
                    owners.remove(key)
                touched.append(name)
            for owner in old.additional:
                self._additional.pop(owner, None)
        if part is not None:
            self._parts[key] = part
            for name in part.rrsets:
                self._owners.setdefault(name, []).append(key)
                touched.append(name)
            self._additional.update(part.additional)
        for name in touched:
            self._remerge(name)

    def _remerge(self, name: str) -> None:
        owners = self._owners.get(name)
        wire = wire_name(name)
        if not owners:
            self._owners.pop(name, None)
            self._names.pop(name, None)
            if wire is not None:
                self._wire.pop(wire, None)
            return
        if len(owners) == 1:
            sets = self._parts[owners[0]].rrsets[name]  # shared, not copied
        else:
            sets = {}
            for k in sorted(owners):
                for t, rrs in self._parts[k].rrsets[name].items():
                    have = sets.setdefault(t, [])
                    have.extend(rr for rr in rrs if rr not in have)
        self._names[name] = sets
        if wire is not None:
            self._wire[wire] = sets

    # ---- the zone -----------------------------------------------------------------------
    def _assemble(self, state: ClusterState, serial: int) -> Zone:
        origin, ttl = self.origin, self.ttl
        namespaces = namespaces_of(state)
        wire_tab = dict(self._wire)
        zone = Zone(origin=origin, ttl=ttl, serial=serial, pods_mode=self.pods_mode, namespaces=namespaces,
                    rrsets=dict(self._names), additional=dict(self._additional), wire=wire_tab)
        # Zone-wide names never collide with a part's (those are <svc>.<ns>.svc.<zone> and
        # below, or reverse names), so writing them never touches a shared dict.
        ns_name = f"ns.dns.{origin}"
        dns_svc = state.get("Service", *DNS_SERVICE)
        ns_addrs = [rr for ip in (dns_svc.cluster_ips if isinstance(dns_svc, Service) else [])
                    if (rr := addr_rr(ns_name, ip, ttl))]
        ns_sets: RRsets = {}
        for rr in ns_addrs:
            ns_sets.setdefault(rr.rtype, []).append(rr)
        wide: dict[str, RRsets] = {
            origin: {SOA: [RR(origin, SOA, min(ttl, 300), zone.soa().data)], NS: [RR(origin, NS, ttl, ns_name)]},
            f"dns-version.{origin}": {TXT: [RR(f"dns-version.{origin}", TXT, VERSION_TTL, SCHEMA_VERSION)]},
            f"dns.{origin}": {}, ns_name: ns_sets}
        for sub in ("svc", "pod"):
            wide[f"{sub}.{origin}"] = {}
            for ns in namespaces:
                wide[f"{ns}.{sub}.{origin}"] = {}
        zone.additional[origin] = ns_addrs
        zone.rrsets.update(wide)
        for name, sets in wide.items():
            if (w := wire_name(name)) is not None:
                wire_tab[w] = sets
        if self.pods_mode == "verified":
            zone.pod_ips = pod_ips(state.pods)
        return zone


def build_zone(state: ClusterState, origin: str = "cluster.local", ttl: int = 30,
               pods_mode: str = "insecure", serial: int = 1) -> Zone:
    """Every record of the cluster zone and the reverse names for a snapshot."""
    return ZoneBuilder(origin, ttl, pods_mode).build(state, serial)
