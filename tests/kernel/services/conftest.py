"""Fixtures: one real topology per test module (svc_topo.SvcTopo), a proxy role applied
through a libnftables session into its node namespace; everything removed afterwards."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from netnames import unique_netns

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "services"))

from podnet.agent.service_proxy_role import ServiceProxyRole  # noqa: E402
from podnet.calc.model import ClusterState  # noqa: E402
from podnet.dataplane.nft.session import NftSession  # noqa: E402
from builders import make_pool  # noqa: E402
from svc_topo import NODE_IP4, NODE_IP6, SvcTopo  # noqa: E402


class Proxy:
    """A ClusterState, the role and the session: `put`/`remove` objects, then `sync()`."""
    def __init__(self, topo: SvcTopo):
        # the IP pools: a source inside is a pod (kube-proxy's local traffic detection)
        self.state = ClusterState.from_objects(
            [make_pool("v4", "10.244.0.0/16"), make_pool("v6", "fd00:10:244::/56")], node_name="node-1")
        self.role = ServiceProxyRole([NODE_IP4, NODE_IP6], conntrack=True, netns=topo.node)
        self.session = NftSession(topo.node)
        self.changed: set | None = None

    def put(self, *objs):
        for o in objs:
            self.state.put(o)
            if self.changed is not None:
                self.changed.add(o.key)

    def remove(self, obj):
        self.state.remove(obj.kind, obj.namespace, obj.name)
        if self.changed is not None:
            self.changed.add(obj.key)

    def sync(self, full: bool = False) -> str:
        text = self.role.sync(self.state, None if full else self.changed, self.session)
        self.changed = set()
        return text


@pytest.fixture(scope="module")
def topo():
    t = SvcTopo(unique_netns("svc"))
    try:
        t.build()
        for b in ("b1", "b2", "b3"):
            t.start_backend(b)
        yield t
    finally:
        t.teardown()


@pytest.fixture
def proxy(topo):
    p = Proxy(topo)
    try:
        yield p
    finally:
        p.session.close()
        topo.run(topo.node, "nft", "delete", "table", "inet", "podnet-svc")
