"""`podnet trace` predictions of the demo's paths, from a fixed hand-built state, against
golden text and JSON (tests/golden/trace). PODNET_UPDATE_GOLDEN=1 rewrites the files
(review the diff before committing)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import trace_demo_state as demo
from golden_files import GOLDEN_DIR, check_golden
from podnet.trace import render
from podnet.trace.path import predict
from podnet.trace.resolve import find_pod, parse_dest, resolve

GOLDEN = GOLDEN_DIR / "trace"
ALLOW = ("40-deny-web.yaml", "50-allow-client.yaml")

# name -> (src, dst, family, encap, policies, natOutgoing, endpoint); nodePort cases:
# the web Service as type NodePort on 30080
CASES = {
    "pod-pod-same-node": ("client", "web-5d8f7-a1:8080", 4, "none", (), True, None),
    "pod-pod-other-node-direct": ("client", "shop/web-5d8f7-b2:8080", 4, "none", (), True, None),
    "pod-pod-other-node-vxlan": ("client", "shop/web-5d8f7-b2:8080", 4, "vxlan", (), True, None),
    "pod-service-vip": ("client", "10.96.0.20:80/tcp", 4, "none", (), True, "10.244.0.66"),
    "pod-service-name": ("client", "web", 4, "none", (), True, None),
    "pod-service-fqdn-vxlan": ("client", "web.shop.svc.cluster.local:80", 4, "vxlan", (), True, "10.244.0.67"),
    "pod-outside-nat": ("client", "203.0.113.10:80", 4, "none", (), True, None),
    "pod-outside-dns-name": ("client", "www.example.test", 4, "vxlan", (), True, None),
    "pod-node-ip-other-node": ("client", "198.18.0.12:22", 4, "none", (), True, None),
    # host protection (issue 12 §1): etcd's port refused at the node's input, DNS allowed
    "pod-own-node-etcd-refused": ("client", "198.18.0.11:2379", 4, "none", (), True, None),
    "pod-own-node-dns": ("client", "198.18.0.11:53/udp", 4, "none", (), True, None),
    "ipv6-pod-own-node-etcd-refused": ("client", "[fd00:198:18::11]:2379", 6, "none", (), True, None),
    "pod-nodeport-other-node": ("client", "198.18.0.12:30080", 4, "none", (), True, "10.244.0.66"),
    "pod-nodeport-own-node-vxlan": ("client", "198.18.0.11:30080", 4, "vxlan", ALLOW, True, "10.244.0.67"),
    "pod-outside-no-nat": ("client", "203.0.113.10:80", 4, "none", (), False, None),
    "pod-web-denied": ("client", "web", 4, "none", ALLOW[:1], True, "10.244.0.66"),
    "pod-web-allowed": ("client", "web", 4, "none", ALLOW, True, "10.244.0.66"),
    "worker-web-denied": ("batch/worker", "web.shop:80", 4, "none", ALLOW, True, "10.244.0.3"),
    "ipv6-pod-service": ("client", "web", 6, "none", ALLOW, True, "fd00:10:244::42"),
    "ipv6-pod-pod-vxlan": ("client", "shop/web-5d8f7-c3:8080", 6, "vxlan", (), True, None),
    "ipv6-pod-outside-nat": ("client", "[fd00:203:113::10]:80", 6, "none", (), True, None),
    # --routing bgp (issue 21 §3): BIRD's routes between nodes; the router learned the
    # pod blocks, so the answer to an un-NATed pod comes back through it
    "bgp-pod-pod-other-node": ("client", "shop/web-5d8f7-b2:8080", 4, "bgp", (), True, None),
    "bgp-pod-outside-no-nat": ("client", "203.0.113.10:80", 4, "bgp", (), False, None),
}


def run(name: str):
    src, dst, fam, encap, pols, nat, ep = CASES[name]
    st = demo.state(pols, nat, 30080 if "nodeport" in name else 0)
    pod = find_pod(st, "shop", src)
    d = parse_dest(dst)
    facts = demo.facts("none", "bgp") if encap == "bgp" else demo.facts(encap)
    target = resolve(st, pod.namespace, d.text, fam, facts.outside_names)
    return predict(st, facts, pod, target, d.port, d.proto, fam, endpoint=ep, query=d.text)


def check(path: Path, got: str) -> None:
    check_golden(path, got)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    t = run(name)
    check(GOLDEN / f"{name}.txt", render.text(t))
    check(GOLDEN / f"{name}.json", render.to_json(t))


def test_deterministic():
    assert render.to_json(run("pod-service-name")) == render.to_json(run("pod-service-name"))
    json.loads(render.to_json(run("pod-outside-nat")))
