"""`podnet trace` in a lab of two racks (issue 21 §3), confirmed by real packets: one lab
(`--racks 2 --routing bgp --encap crosssubnet --dual-stack`, n1 and n3 in rack a, n2 in
rack b) shared by the cases. The default pools are CrossSubnet (VXLAN between racks, the
agents route); the pool `routed` is vxlanMode Never (BIRD routes it through the router).
Each trace's prediction must equal what the kernel did: no MISMATCH."""
from __future__ import annotations

import copy
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from lablib import Lab
from needs import missing
from podnet.api.objects import from_dict
from podnet.apiserver.write import Writer
from podnet.dataplane.bird.daemon import available

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 9090
ANNOTATION = "annotations: {podnet.io/ipAddrs: '[\"%s\"]'}"
PODS = """apiVersion: podnet.io/v1
kind: IPPool
metadata: {name: routed}
spec: {cidr: 10.246.0.0/24, blockSize: 28, natOutgoing: true, vxlanMode: Never}
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  {ANNOTATION % ip if ip else ""}
spec:
  nodeName: {node}
  containers:
  - {{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}
""" for name, node, ip in (("p1", "n1", ""), ("p2", "n2", ""), ("p3", "n3", ""),
                           ("q1", "n1", "10.246.0.5"), ("q2", "n2", "10.246.0.21")))


@pytest.fixture(scope="module")
def racks(lab_home: Path) -> Iterator[Lab]:
    why = available()
    if why:
        missing(why)
    lab = Lab("rt" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "3", "--racks", "2", "--routing", "bgp",
                   "--encap", "crosssubnet", "--dual-stack")
        lab.podnet("apply", "-f", "-", input=PODS)
        lab.wait_pods(5)
        yield lab
    finally:
        lab.down()


def trace(lab: Lab, src: str, dst: str, *args: str, timeout: float = 30.0) -> dict:
    """The trace, once prediction and kernel agree (routes settle: BIRD's sessions come up
    and the agents publish their subnets within seconds of the pods); the last one's
    mismatches otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        cp = lab.podnet("trace", "--lab", lab.name, src, dst, *args, "-o", "json", check=False)
        assert cp.returncode in (0, 3), cp.stdout + cp.stderr
        t = json.loads(cp.stdout)
        bad = [c["line"] for c in t["confirmation"]["checks"] if not c["ok"]]
        if t["confirmation"]["ok"] and not bad:
            return t
        if time.monotonic() > deadline:
            routes = subprocess.run(["ip", "-n", f"pn-{lab.name}-n1", "route"], capture_output=True, text=True).stdout
            pytest.fail("\n".join(bad) + f"\nn1's routes:\n{routes}")
        time.sleep(1.0)


def hops(t: dict, direction: str = "request") -> list[dict]:
    return t[direction]["hops"]


def checked(t: dict, where: str, what: str) -> list[dict]:
    return [c for c in t["confirmation"]["checks"] if c["where"] == where and c["what"].startswith(what)]


@pytest.mark.parametrize("family", [4, 6])
def test_crosssubnet_across_racks_wrapped_through_the_router(racks: Lab, family: int):
    t = trace(racks, "p1", f"p2:{PORT}", *(["-6"] if family == 6 else []))
    assert [h["kind"] for h in hops(t)] == ["pod", "node", "underlay", "router", "underlay", "node", "pod"]
    router = hops(t)[3]
    outer = router["headers"]["outer"]
    assert outer["l3"]["family"] == 4 and outer["l4"]["dport"] == 4789 and outer["l3"]["ttl"] == 63
    assert router["headers"]["l3"]["family"] == family
    # the kernel saw the wrapped packet at the router (marked by the inner port) and routed
    # its outer header as predicted, both ways
    for d in ("request", "reply"):
        seen = checked(t, f"{d} router", "packet seen") + checked(t, f"{d} router", "leaves by") + \
            checked(t, f"{d} router", "ip route get")
        assert len(seen) == 3 and all(c["ok"] for c in seen), seen
    assert hops(t)[5]["iif"] == "pnvx"


def test_same_rack_bare(racks: Lab):
    t = trace(racks, "p1", f"p3:{PORT}")
    assert [h["kind"] for h in hops(t)] == ["pod", "node", "underlay", "node", "pod"]
    assert hops(t)[1]["oif"] == "eth0" and hops(t)[1]["headers"]["outer"] is None


def test_never_with_bgp_through_the_router_on_birds_routes(racks: Lab):
    t = trace(racks, "q1", f"q2:{PORT}")
    kinds = [h["kind"] for h in hops(t)]
    assert kinds == ["pod", "node", "underlay", "router", "underlay", "node", "pod"]
    assert all(h["headers"] is None or h["headers"]["outer"] is None for h in hops(t))
    route = next(s for s in hops(t)[1]["steps"] if s["kind"] == "route")
    assert route["data"]["bgp"]["session"] == "pn_mesh_n2_4" and "proto bird" in route["data"]["route"]
    # the kernel's route is BIRD's and BIRD learned it over that session from n2, next hop n2;
    # the router's too (learned from n2)
    for where in ("request node n1", "request router", "reply node n2", "reply router"):
        bgp = checked(t, where, "BIRD's route") + checked(t, where, "kernel route")
        assert len(bgp) == 2 and all(c["ok"] for c in bgp), (where, bgp)


def test_a_rack_in_an_as_of_its_own_over_ebgp(racks: Lab):
    """AS per rack (Calico's Node spec.bgp.asNumber): n2, rack b's only node, moves to AS
    65002. Its sessions come back as eBGP (with n1 and n3, and with the router, which takes
    any AS but its own), and trace, predicting the AS path, agrees with BIRD's routes."""
    def own_as(cur):
        raw = copy.deepcopy(cur.raw)
        raw.setdefault("spec", {})["bgp"] = {"asNumber": 65002}
        return from_dict(raw)
    s = racks.store()
    try:
        Writer(s).mutate("Node", "", "n2", own_as)
    finally:
        s.close()
    t = trace(racks, "q1", f"q2:{PORT}")
    route = next(s for s in hops(t)[1]["steps"] if s["kind"] == "route")
    assert route["data"]["bgp"]["as_path"] == "65002", route
    for where in ("request node n1", "request router", "reply node n2", "reply router"):
        bird = checked(t, where, "BIRD's route")
        assert len(bird) == 1 and bird[0]["ok"] and "AS path" in bird[0]["kernel"], (where, bird)
    assert "AS path 64512" in checked(t, "reply node n2", "BIRD's route")[0]["kernel"]
