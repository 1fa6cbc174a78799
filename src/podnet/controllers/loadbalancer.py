"""The load-balancer controller (issue 16 §2), as MetalLB or Calico's LoadBalancer IPAM: a
Service of type LoadBalancer of podnet's class (loadBalancerClass unset, or `podnet.io/lb`)
gets one address per IP family from the IPPools whose allowedUses is LoadBalancer
(ipam/lbips.py), written to status.loadBalancer.ingress through the status subresource
(apiserver/write.Writer). Services of another class are left alone (another controller's),
a Service that stops being ours gives its addresses back and loses the status it got. The
service proxy of every node then treats the address like an external IP; the lab's router
learns a route for it (lab/lbroutes.py).

Level-triggered: every pass computes what each Service should hold from the store as it
is; an Informer on Services and IPPools wakes it, a periodic pass catches the rest.
"""
from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from typing import Any

from podnet.api.objects import Resource, Service
from podnet.apiserver.errors import WriteError
from podnet.apiserver.write import Writer
from podnet.datastore.cache import Batch, Informer
from podnet.datastore.interface import Conflict, Datastore, DatastoreError, NotFound
from podnet.ipam.lbips import USE, claim_lb_ip, held_lb_ips, in_pools, lb_pools, release_lb_ip
from podnet.ipam.serviceips import IP_KIND

log = logging.getLogger("podnet.controllers.loadbalancer")
LB_CLASS = "podnet.io/lb"
KINDS = ("Service", "IPPool")


def is_ours(svc: Service) -> bool:
    cls = svc.spec.get("loadBalancerClass")
    return svc.type == "LoadBalancer" and (not cls or cls == LB_CLASS)


def _families(svc: Service) -> list[int]:
    out: list[int] = []
    for ip in svc.cluster_ips:
        try:
            v = ipaddress.ip_address(ip).version
        except ValueError:
            continue
        if v not in out:
            out.append(v)
    return out


def _ingress_ips(svc: Service) -> list[str]:
    lb = svc.status.get("loadBalancer") or {}
    return [str(i["ip"]) for i in lb.get("ingress") or [] if isinstance(i, dict) and i.get("ip")]


class LoadBalancerController:
    def __init__(self, store: Datastore):
        self.store = store
        self.writer = Writer(store)
        self.writes = 0
        self.errors = 0

    # ---- one Service ----------------------------------------------------------------------
    def reconcile(self, svc: Service, pools: list[Resource]) -> bool:
        """Bring one Service's addresses and status in line; False when to retry."""
        held = held_lb_ips(self.store, svc)
        if not is_ours(svc):
            if not held:
                return True  # another class's Service, or never ours: not touched
            for ip in held:
                release_lb_ip(self.store, svc, ip)
            # only the addresses this controller wrote leave the status
            return self._write_status(svc, [i for i in _ingress_ips(svc) if i not in held])
        want: list[str] = []
        for fam in _families(svc):
            mine = lb_pools(pools, fam)
            keep = sorted(ip for ip in held if ipaddress.ip_address(ip).version == fam and in_pools(ip, mine))
            if keep:
                want.append(keep[0])
                continue
            got = claim_lb_ip(self.store, svc, mine)
            if got is None:
                if mine:
                    log.warning("Service %s/%s: no free IPv%d load-balancer address", svc.namespace, svc.name, fam)
                continue
            want.append(got)
        for ip in held:
            if ip not in want:
                release_lb_ip(self.store, svc, ip)
        return self._write_status(svc, want)

    def _write_status(self, svc: Service, ips: list[str]) -> bool:
        ingress: list[dict[str, Any]] = [{"ip": ip, "ipMode": "VIP"} for ip in ips]
        cur = (svc.status.get("loadBalancer") or {}).get("ingress") or []
        if cur == ingress:
            return True
        status = dict(svc.status)
        status["loadBalancer"] = {"ingress": ingress} if ingress else {}
        try:
            self.writer.update_status(svc.with_status(status), revision=svc.resource_version)
            self.writes += 1
            return True
        except (Conflict, NotFound, WriteError):
            return False

    def reconcile_all(self) -> bool:
        pools = self.store.list("IPPool").items
        services = [s for s in self.store.list("Service").items if isinstance(s, Service)]
        ok = True
        live = {(s.namespace, s.name) for s in services}
        for svc in services:
            try:
                ok &= self.reconcile(svc, pools)
            except DatastoreError as e:
                self.errors += 1
                log.warning("Service %s/%s: %s (will retry)", svc.namespace, svc.name, e)
                ok = False
            except Exception:  # noqa: BLE001 - a bad object must never stop the controller
                self.errors += 1
                log.exception("Service %s/%s: reconcile failed", svc.namespace, svc.name)
        # an address whose Service is gone (its delete's release lost a race): free it
        for o in self.store.list(IP_KIND).items:
            owner = str(o.spec.get("service") or "")
            if o.spec.get("use") == USE and tuple(owner.split("/", 1)) not in live:
                ns, _, name = owner.partition("/")
                release_lb_ip(self.store, Resource({"kind": "Service", "metadata":
                                                    {"namespace": ns, "name": name}}), o.name)
        return ok

    # ---- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event, resync_every: float = 30.0) -> None:
        batches: queue.Queue[Batch] = queue.Queue()
        with Informer(self.store, KINDS, batches.put, batch_window=0.05, name="loadbalancer") as informer:
            while not informer.wait_synced(0.5):
                if stop.is_set():
                    return
            retry = not self.reconcile_all()
            last = time.monotonic()
            while not stop.is_set():
                try:
                    batches.get(timeout=0.5 if retry else 2.0)
                except queue.Empty:
                    if not retry and time.monotonic() - last < resync_every:
                        continue
                while not batches.empty():
                    batches.get_nowait()
                retry = not self.reconcile_all()
                last = time.monotonic()

