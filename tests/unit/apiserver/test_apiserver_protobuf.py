"""Kubernetes' protobuf request bodies, decoded into the JSON the API serves. Pure.

The bytes are built here field by field as the Go marshaller writes them (k8s.io/api's
generated.proto numbers), zero values included, as kubectl's typed clients send them."""
from __future__ import annotations

import pytest

from podnet.apiserver import protobuf
from podnet.apiserver.status import ApiStatus


def varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num: int, value) -> bytes:
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(num << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def service() -> bytes:
    meta = field(1, "s1") + field(3, "") + field(11, field(1, "app") + field(2, "s1")) \
        + field(8, b"")                                    # creationTimestamp: an empty Time
    port = field(1, "80-8080") + field(2, "TCP") + field(3, 80) \
        + field(4, field(1, 0) + field(2, 8080) + field(3, "")) + field(5, 0)
    spec = field(1, port) + field(2, field(1, "app") + field(2, "s1")) + field(4, "ClusterIP") + field(3, "")
    return envelope("v1", "Service", field(1, meta) + field(2, spec) + field(3, b""))


def test_a_service_as_kubectl_create_service_sends_it():
    assert protobuf.decode(service()) == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s1", "labels": {"app": "s1"}},
        "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                 "selector": {"app": "s1"}, "type": "ClusterIP"}}


def test_named_target_port_and_zero_replicas_kept():
    port = field(3, 80) + field(4, field(1, 1) + field(3, "http"))
    got = protobuf.decode(envelope("v1", "Service", field(2, field(1, port))))
    assert got["spec"]["ports"] == [{"port": 80, "targetPort": "http"}]
    dep = protobuf.decode(envelope("apps/v1", "Deployment", field(2, field(1, 0))))
    assert dep["spec"] == {"replicas": 0}


def test_refusals():
    with pytest.raises(ApiStatus) as e:
        protobuf.decode(envelope("v1", "ConfigMap", b""))
    assert e.value.code == 415
    for bad in (b"not k8s", protobuf.MAGIC + b"\xff\xff", envelope("v1", "Service", field(2, field(99, 1))),
                envelope("v1", "Service", b"\x0a\x50abc")):
        with pytest.raises(ApiStatus) as e:
            protobuf.decode(bad)
        assert e.value.code == 400
