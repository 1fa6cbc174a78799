"""ServiceProxyRole: events touch only their services; partial syncs land where a full
sync would; a failed transaction makes the next sync a fresh full one; metrics count."""
from __future__ import annotations

from podnet.agent.service_proxy_role import ServiceProxyRole
from podnet.api.objects import ObjectKey
from podnet.calc.model import ClusterState
from builders import endpoint, make_node, make_pool, make_service, make_slice
from svc_fixture import objects
from svc_nftsim import NftModel, canonical


class ModelRunner:
    """The role's runner seam, backed by the nft model (the kernel version is in tests/kernel)."""
    def __init__(self):
        self.model = NftModel()
        self.fail_next = False

    def apply(self, script: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("transaction refused")
        self.model.apply(script)


def cluster() -> ClusterState:
    svcs, slices = objects()
    return ClusterState.from_objects([*svcs, *slices, make_node("node-1", ["198.18.0.11"])],
                                     node_name="node-1")


def fresh(state: ClusterState) -> NftModel:
    r = ModelRunner()
    ServiceProxyRole().sync(state, None, r)
    return r.model


def same(a: NftModel, b: NftModel) -> None:
    (ac, as_), (bc, bs) = canonical(a), canonical(b)
    assert ac == bc
    assert {k: v for k, v in as_.items() if not k.startswith("aff")} == \
        {k: v for k, v in bs.items() if not k.startswith("aff")}


def test_events_sequence_partial_equals_full():
    st, run, role = cluster(), ModelRunner(), ServiceProxyRole()
    role.sync(st, None, run)
    steps = [
        [make_slice("default", "web", [endpoint("10.244.1.2"), endpoint("10.244.7.7")])],
        [make_service("default", "new", ip="10.96.0.77"),
         make_slice("default", "new", [endpoint("10.244.5.5")], name="new-abc")],
        [make_node("node-1", ["198.18.0.11", "198.18.0.12"])],
        [make_service("default", "sticky", ip="10.96.0.21")],
        [make_pool("v4", "10.244.0.0/16"), make_pool("v6", "fd00:10:244::/56")],
        [make_pool("v4", "10.244.0.0/15")],  # the pod CIDR set follows the pools
    ]
    for objs in steps:
        for o in objs:
            st.put(o)
        text = role.sync(st, {o.key for o in objs}, run)
        assert text and "delete table" not in text
        same(run.model, fresh(st))
    assert run.model.sets["podcidrs4"] == {"10.244.0.0/15": ""}
    # deletions: a slice whose name does not say its service, then a whole service
    st.remove("EndpointSlice", "default", "new-abc")
    role.sync(st, {ObjectKey("EndpointSlice", "default", "new-abc")}, run)
    same(run.model, fresh(st))
    assert "10.96.0.77 . tcp . 80" in run.model.sets["noep4"]
    st.remove("Service", "default", "np")
    role.sync(st, {ObjectKey("Service", "default", "np")}, run)
    same(run.model, fresh(st))
    assert role.full_syncs == 1 and role.partial_syncs == 8 and role.failed_syncs == 0


def test_unrelated_change_renders_nothing():
    st, run, role = cluster(), ModelRunner(), ServiceProxyRole()
    role.sync(st, None, run)
    assert role.sync(st, {ObjectKey("Pod", "default", "x"), ObjectKey("Node", "", "node-2")}, run) == ""


def test_failure_forgets_state_and_next_sync_is_fresh_full():
    st, run, role = cluster(), ModelRunner(), ServiceProxyRole()
    role.sync(st, None, run)
    run.fail_next = True
    s = make_slice("default", "web", [endpoint("10.244.1.2")])
    st.put(s)
    try:
        role.sync(st, {s.key}, run)
    except RuntimeError:
        pass
    assert role.failed_syncs == 1
    text = role.sync(st, {s.key}, run)
    assert "delete table inet podnet-svc" in text
    same(run.model, fresh(st))
    assert 'podnet_service_proxy_syncs_total{kind="full"} 2' in role.metrics_text()
    st_ = role.status()
    assert (st_["fullSyncs"], st_["failedSyncs"], st_["lastSync"]) == (2, 1, "full")
    assert st_["servicePorts"] == len(fresh_role_entries(st))


def fresh_role_entries(state):
    r = ServiceProxyRole()
    r.nft_fragment(state, None)
    return r._rendered.entries


def test_periodic_full_sync_keeps_affinity_sets():
    st, run, role = cluster(), ModelRunner(), ServiceProxyRole()
    role.sync(st, None, run)
    text = role.sync(st, None, run)
    assert "delete table" not in text and "flush table inet podnet-svc" in text


def test_node_changing_zone_recomputes_hinted_services():
    from podnet.calc.topology import ZONE_LABEL

    def hinted(ip: str, zone: str) -> dict:
        return {**endpoint(ip), "hints": {"forZones": [{"name": zone}]}}
    st, run, role = cluster(), ModelRunner(), ServiceProxyRole()
    st.put(make_node("node-1", ["198.18.0.11"]).with_metadata(labels={ZONE_LABEL: "a"}))
    st.put(make_slice("default", "web", [hinted("10.244.1.2", "a"), hinted("10.244.7.7", "b")]))
    role.sync(st, None, run)
    web = role._entries[("default/web/tcp/http", 4)]
    assert [e.ip for e in web.endpoints] == ["10.244.1.2"]
    st.put(make_node("node-1", ["198.18.0.11"]).with_metadata(labels={ZONE_LABEL: "b"}))
    assert role.sync(st, {ObjectKey("Node", "", "node-1")}, run)
    same(run.model, fresh(st))
    assert [e.ip for e in role._entries[("default/web/tcp/http", 4)].endpoints] == ["10.244.7.7"]
