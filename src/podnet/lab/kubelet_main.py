"""`podnet kubelet --state DIR`: the lab kubelet process (started by `podnet up` on the
control-plane node) and the cluster-wide controllers that run beside it."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from podnet.datastore.interface import open_datastore
from podnet.controllers.manager import start_controllers
from podnet.lab.kubelet import Kubelet
from podnet.lab.lbroutes import run_loop
from podnet.lab.state import LabState
from podnet.lab.up import component_url, node_cni_url
from podnet.lab.topology import spec_from_dict

log = logging.getLogger("podnet.kubelet")


def run_kubelet(state_dir: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    state = LabState(Path(state_dir))
    meta = state.read_meta()
    if not meta:
        print(f"kubelet: no lab state in {state_dir}", file=sys.stderr)
        return 1
    spec = spec_from_dict(meta["spec"])
    # it runs inside the first node's netns, so it reaches the store as the agents do;
    # on etcd the kubelet, the controllers, the CNI plugin and the DNS pods each have
    # their own client certificate (lab/etcd.py)
    store = open_datastore(component_url(meta, "kubelet") or state.datastore_url())
    kubelet = Kubelet(spec, state, store, component_url(meta, "kubelet"),
                      cni_url=component_url(meta, "cni"), pod_url=component_url(meta, "dns"),
                      node_cni_urls={n.name: node_cni_url(meta, n.name) for n in spec.nodes})
    signal.signal(signal.SIGTERM, lambda *_: kubelet.stop.set())
    signal.signal(signal.SIGINT, lambda *_: kubelet.stop.set())
    log.info("lab kubelet for %s (%d nodes), pid %d", spec.name, len(spec.nodes), os.getpid())
    for name in start_controllers(component_url(meta, "controllers") or store.url, kubelet.stop):
        log.info("controller %s started", name)
    # the router learns a route per load-balancer address (lab/lbroutes.py)
    threading.Thread(target=run_loop, args=(lambda: kubelet.nodes.spec, component_url(meta, "controllers") or store.url, kubelet.stop),
                     daemon=True, name="lbroutes").start()
    try:
        kubelet.run()
    finally:
        store.close()
    return 0
