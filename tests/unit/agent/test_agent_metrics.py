"""The agent's sync counters: per role (full, partial, failed, durations) in the Node's
status, the compact form for `get nodes -o wide`, and the Prometheus text. No root: the
roles render nothing, so no nft runs."""
from __future__ import annotations

from podnet.agent.agent import Agent, AgentContext
from podnet.agent.metrics import AgentMetrics
from podnet.apiserver.columns import compact_syncs as compact
from podnet.api.objects import ObjectKey
from podnet.datastore.sqlite import SqliteDatastore


class Quiet:
    def __init__(self, name: str, kinds: tuple[str, ...], fail_kernel: bool = False):
        self.name, self.kinds, self.fail_kernel = name, kinds, fail_kernel

    def nft_fragment(self, state, changed):
        return ""

    def committed(self, ok):
        pass

    def apply_kernel(self, state):
        if self.fail_kernel:
            raise OSError("boom")


def make(tmp_path, *roles):
    store = SqliteDatastore(f"sqlite:///{tmp_path}/s.db")
    return Agent(AgentContext("n1", ["198.18.0.11"], "none", None, store), roles=list(roles)), store


def test_status_counts_full_and_partial_syncs_per_role(tmp_path):
    svc, pol = Quiet("services", ("Service",)), Quiet("policy", ("NetworkPolicy",))
    agent, store = make(tmp_path, svc, pol)
    try:
        assert agent.sync(None)
        assert agent.sync({ObjectKey("Service", "default", "a")})
        assert agent.sync({ObjectKey("Service", "default", "b")})
        sync = agent.node_status()["agent"]["sync"]
    finally:
        store.close()
    assert (sync["full"], sync["partial"], sync["failed"]) == (1, 2, 0)
    assert sync["last"] == "partial" and sync["lastSeconds"] >= 0 and sync["secondsTotal"] >= sync["lastSeconds"]
    roles = sync["roles"]
    assert set(roles) == {"services", "policy"}
    assert (roles["services"]["full"], roles["services"]["partial"]) == (1, 2)
    assert (roles["policy"]["full"], roles["policy"]["partial"]) == (1, 0)  # no change of its kinds
    for r in roles.values():
        assert set(r) == {"full", "partial", "failed", "last", "lastSeconds", "maxSeconds", "secondsTotal"}


def test_a_failed_kernel_apply_counts_and_forces_a_full_sync(tmp_path):
    bad = Quiet("routes", ("Node",), fail_kernel=True)
    agent, store = make(tmp_path, bad)
    try:
        assert not agent.sync({ObjectKey("Node", "", "n2")})
        assert agent._full_needed
        st = agent.node_status()["agent"]
    finally:
        store.close()
    assert st["sync"]["failed"] == 1 and st["sync"]["roles"]["routes"]["failed"] == 1
    assert st["health"] == "degraded" and "boom" in st["lastError"]


def test_compact_form_and_prometheus_text():
    m = AgentMetrics()
    m.agent.record("full", 0.5, True)
    m.agent.record("partial", 0.0021, True)
    m.role("services").record("partial", 0.002, False)
    assert compact(m.status()) == "1f+1p,0err,2.1ms"
    assert compact({"full": 2, "partial": 0, "failed": 0, "lastSeconds": 1.5}) == "2f+0p,0err,1.50s"
    assert compact(None) == compact("junk") == compact({"full": "x"}) == "<none>"
    text = m.prometheus("n1")
    assert 'podnet_agent_syncs_total{node="n1",role="all",kind="full"} 1' in text
    assert 'podnet_agent_sync_failures_total{node="n1",role="services"} 1' in text
    assert "# TYPE podnet_agent_last_sync_seconds gauge" in text


def test_metrics_endpoint_serves_the_text_on_loopback():
    import urllib.request

    from podnet.agent.metrics import serve_metrics
    m = AgentMetrics()
    m.agent.record("full", 0.01, True)
    server = serve_metrics(0, lambda: m.prometheus("n1"), host="127.0.0.1")
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
            assert r.headers["Content-Type"].startswith("text/plain")
    finally:
        server.shutdown()
        server.server_close()
    assert 'podnet_agent_syncs_total{node="n1",role="all",kind="full"} 1' in body


def test_a_failed_sync_is_retried_whole_without_waiting_for_an_event(tmp_path):
    import threading
    import time

    class Flaky(Quiet):
        def __init__(self):
            super().__init__("routes", ("Node",))
            self.calls: list[bool] = []  # full?
            self.left = 2

        def nft_fragment(self, state, changed):
            self.calls.append(changed is None)
            return ""

        def apply_kernel(self, state):
            if self.left:
                self.left -= 1
                raise OSError("not yet")

    role = Flaky()
    agent, store = make(tmp_path, role)
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while role.left or agent._full_needed:
            assert time.monotonic() < deadline, (role.calls, agent.metrics.status())
            time.sleep(0.05)
    finally:
        agent.stop.set()
        t.join(5)
        store.close()
    assert role.calls[:3] == [True, True, True]  # the first sync, then two full retries
    assert agent.metrics.agent.failed == 2 and agent.last_error == ""


def test_start_is_one_full_sync_not_two(tmp_path):
    """The informer's first list arrives as a resync batch too; the agent already read it."""
    import threading
    import time

    role = Quiet("services", ("Service",))
    agent, store = make(tmp_path, role)
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not store.list("Node").items:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        assert agent.metrics.agent.full == 1, agent.metrics.status()
    finally:
        agent.stop.set()
        t.join(5)
        store.close()
