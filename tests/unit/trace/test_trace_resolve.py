"""SRC/DST words to pods, Services and addresses; bad input is one clear error."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

import trace_demo_state as demo
from podnet.trace.resolve import TraceError, find_pod, parse_dest, resolve

STATE = demo.state()


@pytest.mark.parametrize("text,host,port,proto", [
    ("web", "web", None, "TCP"),
    ("web:80", "web", 80, "TCP"),
    ("web:53/udp", "web", 53, "UDP"),
    ("10.96.0.20:80/TCP", "10.96.0.20", 80, "TCP"),
    ("fd00:10:96::14", "fd00:10:96::14", None, "TCP"),
    ("[fd00:10:96::14]:80/udp", "fd00:10:96::14", 80, "UDP"),
    ("shop/client:8080", "shop/client", 8080, "TCP"),
])
def test_parse_dest(text, host, port, proto):
    d = parse_dest(text)
    assert (d.text, d.port, d.proto) == (host, port, proto)


@pytest.mark.parametrize("text", ["", "web:0", "web:65536", "web:http", "[::1]:x"])
def test_parse_dest_rejects(text):
    with pytest.raises(TraceError):
        parse_dest(text)


@given(st.integers(1, 65535), st.sampled_from(["TCP", "UDP", "SCTP"]))
def test_parse_dest_round_trip(port, proto):
    d = parse_dest(f"web.shop:{port}/{proto.lower()}")
    assert (d.text, d.port, d.proto) == ("web.shop", port, proto)


@pytest.mark.parametrize("text,fam,kind,ip", [
    ("web", 4, "service", demo.VIP4),
    ("web.shop", 6, "service", demo.VIP6),
    ("web.shop.svc", 4, "service", demo.VIP4),
    ("web.shop.svc.cluster.local.", 4, "service", demo.VIP4),
    (demo.VIP4, 4, "service", demo.VIP4),
    ("web-5d8f7-a1", 4, "pod", "10.244.0.3"),
    ("batch/worker", 6, "pod", "fd00:10:244::44"),
    ("10.244.0.66", 4, "pod", "10.244.0.66"),
    ("203.0.113.10", 4, "ip", "203.0.113.10"),
])
def test_resolve(text, fam, kind, ip):
    t = resolve(STATE, "shop", text, fam)
    assert (t.kind, t.ip) == (kind, ip)


def test_short_names_are_looked_up_in_the_source_namespace():
    with pytest.raises(TraceError, match="no pod, Service or address"):
        resolve(STATE, "batch", "web", 4)


def test_unknown_pod_is_named():
    with pytest.raises(TraceError, match="pod shop/nope not found"):
        find_pod(STATE, "shop", "nope")


def test_outside_names_from_the_outside_dns():
    t = resolve(STATE, "shop", "www.example.test.", 6, demo.facts().outside_names)
    assert (t.kind, t.ip) == ("ip", "fd00:203:113::10") and "forwards" in t.notes[0]
