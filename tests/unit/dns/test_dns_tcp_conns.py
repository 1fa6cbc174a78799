"""The DNS server's TCP connection table: per-client cap, the longest idle connection makes
room under pressure, a busy one never does."""
from __future__ import annotations

from hypothesis import given, strategies as st

from podnet.dns.tcp_conns import TcpConnTable


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_a_client_over_its_share_is_refused_others_are_not():
    t: TcpConnTable[int] = TcpConnTable(limit=10, per_client=2, clock=Clock())
    assert t.admit(1, "a") == (True, None) and t.admit(2, "a") == (True, None)
    assert t.admit(3, "a") == (False, None)
    assert t.admit(4, "b") == (True, None)
    t.forget(1)
    assert t.admit(5, "a") == (True, None)
    assert t.refused == 1


def test_when_full_the_longest_idle_connection_makes_room():
    t: TcpConnTable[int] = TcpConnTable(limit=3, per_client=3, clock=Clock())
    for c in (1, 2, 3):
        t.admit(c, f"c{c}")
    t.idle(1)          # 1 went idle last: 2 has been idle longest
    assert t.admit(4, "d") == (True, 2)
    assert not t.busy(2)  # the evicted connection learns it is gone
    assert len(t) == 3 and t.evicted == 1


def test_busy_connections_are_never_evicted():
    t: TcpConnTable[int] = TcpConnTable(limit=2, per_client=2, clock=Clock())
    t.admit(1, "a")
    t.admit(2, "b")
    assert t.busy(1) and t.busy(2)
    assert t.admit(3, "c") == (False, None)
    t.idle(2)
    assert t.admit(3, "c") == (True, 2)


@given(st.lists(st.tuples(st.sampled_from(["admit", "idle", "busy", "forget"]),
                          st.integers(0, 30), st.sampled_from("abcd")), max_size=200))
def test_never_over_the_limits(ops):
    t: TcpConnTable[int] = TcpConnTable(limit=8, per_client=3, clock=Clock())
    live: dict[int, str] = {}
    for op, conn, client in ops:
        if op == "admit" and conn not in live:
            ok, victim = t.admit(conn, client)
            if victim is not None:
                assert victim in live
                del live[victim]
            if ok:
                live[conn] = client
        elif op == "idle":
            t.idle(conn)
        elif op == "busy":
            assert t.busy(conn) == (conn in live)
        elif op == "forget":
            t.forget(conn)
            live.pop(conn, None)
        assert len(t) == len(live) <= 8
        assert all(list(live.values()).count(c) <= 3 for c in live.values())
