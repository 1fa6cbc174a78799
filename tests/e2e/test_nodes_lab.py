"""Nodes come and go in a running lab (issue 17 §4): `podnet node add` / `podnet node delete`.

A dual-stack lab of two nodes gains n3; pods on every node reach the new node's pod (IPv4
and IPv6, TCP and UDP). Deleting n3 under a client loop through a Service: its pods leave
gracefully (not one request fails), its Deployment's pods start again on the others, its
blocks are released (`podnet ipam check` clean, no block affine to it), no route of any
node or the router points at it, and no namespace, process or file of it is left. With
`--routing bgp` the new node's first block reaches the lab router within 5 s (issue 21 §4)
and goes away with the node. Refusals change nothing. The tests of a module run in order.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

import rollout_lib
from lablib import Lab, all_pairs, netns_list
from needs import missing
from podnet.api.objects import Service
from podnet.dataplane.bird.daemon import available

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 9090


def pinned_pod(name: str, node: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: solo}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 5
  containers:
  - name: srv
    image: podnet/serve
    ports: [{{containerPort: {PORT}}}, {{containerPort: {PORT}, protocol: UDP}}]
"""


def blocks_of(lab: Lab, node: str) -> set[str]:
    s = lab.store()
    try:
        return {str(b.spec["cidr"]) for b in s.list("IPAMBlock").items if b.spec.get("affinity") == f"host:{node}"}
    finally:
        s.close()


def routes(netns: str, family: int) -> list[dict]:
    cp = subprocess.run(["ip", "-n", netns, "-j", f"-{family}", "route", "show"], capture_output=True,
                        text=True, check=True)
    return json.loads(cp.stdout) if cp.stdout.strip() else []


def via(netns: str, ips: set[str]) -> list[dict]:
    """Routes in `netns` with a next hop among `ips`."""
    return [r for fam in (4, 6) for r in routes(netns, fam)
            if ({r.get("gateway")} | {h.get("gateway") for h in r.get("nexthops") or []}) & ips]


def wait_for(what: str, cond, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


def meta(lab: Lab) -> dict:
    return json.loads((lab.dir / "lab.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---- direct routing, dual stack ----------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(lab_home: Path) -> Iterator[Lab]:
    lab = Lab("nodes" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack")
        yield lab
    finally:
        lab.down()


def test_refusals_change_nothing(lab: Lab):
    mine = lambda: {n for n in netns_list() if n.startswith(f"pn-{lab.name}-")}  # noqa: E731
    before, nets = (lab.dir / "lab.json").read_bytes(), mine()
    for args, why in ((("delete", "n1"), "control plane"), (("delete", "n9"), "has no node 'n9'"),
                      (("add", "n2"), "already has a node 'n2'"), (("add", "web"), "named n1")):
        cp = lab.podnet("node", *args, "--lab", lab.name, check=False)
        assert cp.returncode == 1 and why in cp.stderr, (args, cp.stdout, cp.stderr)
    assert (lab.dir / "lab.json").read_bytes() == before and mine() == nets
    s = lab.store()
    try:
        assert not any(n.spec.get("unschedulable") for n in s.list("Node").items)
    finally:
        s.close()


def test_an_added_node_runs_pods_every_pod_reaches(lab: Lab):
    out = lab.podnet("node", "add", "n3", "--lab", lab.name).stdout
    assert "node n3 joined" in out and "198.18.0.13" in out, out
    assert meta(lab)["spec"]["nodes"] == ["n1", "n2", "n3"]
    assert f"pn-{lab.name}-n3" in meta(lab)["netns"]
    assert "n1,n2,n3" in lab.podnet("labs").stdout
    assert "n3" in lab.podnet("get", "nodes").stdout
    docs = "---\n".join(pinned_pod(f"p{i}", f"n{i}") for i in (1, 2, 3))
    lab.podnet("apply", "-f", "-", input=docs)
    pods = lab.wait_pods(3)
    assert {p.name: p.node_name for p in pods} == {"p1": "n1", "p2": "n2", "p3": "n3"}
    n3_blocks = wait_for("n3 claims blocks on demand (one per family)",
                         lambda: (b := blocks_of(lab, "n3")) and len(b) == 2 and b)
    # every other node routes n3's blocks to n3
    for n in ("n1", "n2"):
        wait_for(f"{n} routes n3's blocks", lambda: n3_blocks <= {
            r["dst"] for r in via(f"pn-{lab.name}-{n}", {"198.18.0.13", "fd00:198:18::13"})})
    failures = all_pairs(pods, PORT)
    assert not failures, "\n".join(failures[:20])


def test_deleting_a_node_drains_it_gracefully_and_leaves_nothing(lab: Lab):
    name = "drn"
    lab.podnet("apply", "-f", "-", input=rollout_lib.manifests(name, 4, graceful=True, dual_stack=True))
    dep_pods = rollout_lib.wait_settled(lab, name, 4)
    on_n3 = [p.name for p in dep_pods if p.node_name == "n3"]
    assert on_n3, [(p.name, p.node_name) for p in dep_pods]  # the scheduler spreads to the new node
    client = next(p for p in lab.wait_pods(1, role="client"))
    s = lab.store()
    try:
        svc = s.get("Service", "default", name)
    finally:
        s.close()
    assert isinstance(svc, Service)
    n3_blocks = blocks_of(lab, "n3")
    n3_ips = {"198.18.0.13", "fd00:198:18::13"}
    ns3 = f"pn-{lab.name}-n3"
    pids = {w: int((lab.dir / "pids" / f"{w}-n3.pid").read_text()) for w in ("agent", "serve", "cni")}
    in_netns = [int(x) for x in subprocess.run(["ip", "netns", "pids", ns3], capture_output=True,
                                               text=True).stdout.split()]
    time.sleep(1.0)  # every proxy has the endpoints
    loop = rollout_lib.ClientLoop(client.annotations["podnet.io/netns"], list(svc.cluster_ips))
    loop.thread.start()
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        out = lab.podnet("node", "delete", "n3", "--lab", lab.name).stdout
        took = time.monotonic() - t0
        time.sleep(1.0)
    finally:
        loop.stop.set()
        loop.thread.join(10)
    assert "cordoned n3" in out and "no route points at it" in out, out
    assert took >= 1.0, out  # the pods' preStop sleep (1 s) ran: they were not cut down
    assert loop.out.total >= 100 and loop.out.failed == 0, loop.out.as_dict()
    # its pods left; the Deployment's run again on the others
    pods = lab.pods("default")
    assert not [p.name for p in pods if p.node_name == "n3"]
    assert "p3" not in {p.name for p in pods}
    again = rollout_lib.wait_settled(lab, name, 4)
    assert {p.node_name for p in again} <= {"n1", "n2"} and not set(on_n3) & {p.name for p in again}
    # its blocks and Node are gone, and IPAM agrees with the cluster
    assert not blocks_of(lab, "n3")
    assert "n3" not in lab.podnet("get", "nodes").stdout
    check = lab.podnet("ipam", "check", check=False)
    assert check.returncode == 0, check.stdout
    # no route anywhere points at it
    for ns in (f"pn-{lab.name}-n1", f"pn-{lab.name}-n2", f"pn-{lab.name}-rt"):
        assert not via(ns, n3_ips), (ns, via(ns, n3_ips))
        assert not {r["dst"] for fam in (4, 6) for r in routes(ns, fam)} & n3_blocks, ns
    # nothing of it is left: namespace, processes, files, state
    assert ns3 not in netns_list()
    assert not [w for w, pid in pids.items() if alive(pid)] and not [p for p in in_netns if alive(p)]
    assert not (lab.dir / "pids" / "agent-n3.pid").exists()
    assert not Path(f"/etc/netns/{ns3}").exists()
    assert meta(lab)["spec"]["nodes"] == ["n1", "n2"] and ns3 not in meta(lab)["netns"]
    # the remaining pods still reach each other
    rest = [p for p in lab.wait_pods(2, app="solo")]
    assert not all_pairs(rest, PORT)


def test_down_removes_an_added_node(lab: Lab):
    lab.podnet("node", "add", "n5", "--lab", lab.name)
    assert f"pn-{lab.name}-n5" in netns_list()
    lab.podnet("down", "--name", lab.name)
    assert not [n for n in netns_list() if n.startswith(f"pn-{lab.name}-")]


# ---- BGP: the router learns the new node's block -----------------------------------------------
@pytest.fixture(scope="module")
def bgp_lab(lab_home: Path) -> Iterator[Lab]:
    why = available()
    if why:
        missing(why)
    lab = Lab("nodesb" + secrets.token_hex(2), lab_home)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack", "--routing", "bgp")
        yield lab
    finally:
        lab.down()


def bird_dsts(netns: str) -> set[str]:
    return {r["dst"] for fam in (4, 6) for r in routes(netns, fam) if r.get("protocol") == "bird"}


def test_bgp_a_new_nodes_block_reaches_the_router_within_5s_and_leaves_with_it(bgp_lab: Lab):
    lab = bgp_lab
    lab.podnet("node", "add", "n3", "--lab", lab.name)
    lab.podnet("apply", "-f", "-", input="---\n".join(pinned_pod(f"p{i}", f"n{i}") for i in (1, 3)))
    blocks = wait_for("n3 claims a block per family", lambda: (b := blocks_of(lab, "n3")) and len(b) == 2 and b,
                      every=0.02)
    t0 = time.monotonic()
    rt = f"pn-{lab.name}-rt"
    wait_for("the router learns n3's blocks", lambda: blocks <= bird_dsts(rt), timeout=10.0, every=0.05)
    learned = time.monotonic() - t0
    assert learned < 5.0, f"the router learned n3's blocks after {learned:.2f}s"  # issue 21 §4
    wait_for("n1 learns n3's blocks over BGP", lambda: blocks <= bird_dsts(f"pn-{lab.name}-n1"))
    failures = all_pairs(lab.wait_pods(2), PORT)
    assert not failures, "\n".join(failures[:20])
    status = lab.podnet("node", "status", "--lab", lab.name, "--router").stdout
    assert any(line.startswith("n3 ") and "Established" in line for line in status.splitlines()), status

    lab.podnet("node", "delete", "n3", "--lab", lab.name)
    assert not blocks & (bird_dsts(rt) | bird_dsts(f"pn-{lab.name}-n1") | bird_dsts(f"pn-{lab.name}-n2"))
    status = lambda: lab.podnet("node", "status", "--lab", lab.name, "--router").stdout  # noqa: E731
    wait_for("no node or router keeps a session with n3",
             lambda: "n3 " not in status() and "198.18.0.13" not in status() and "fd00:198:18::13" not in status(),
             timeout=20)
    assert lab.podnet("ipam", "check", check=False).returncode == 0


# ---- the VXLAN overlay and the etcd datastore ---------------------------------------------------
@pytest.mark.parametrize("variant", [("--encap", "vxlan"), ("--datastore", "etcd")], ids=["vxlan", "etcd"])
def test_a_node_comes_and_goes_on_vxlan_and_on_etcd(make_lab, variant):
    """VXLAN: the other nodes program the new node's VTEP (FDB entry to its underlay
    address) and drop it with the node. etcd: the new agent has a client certificate of
    its own. Either way, its pods reach the others' (v4 and v6) and IPAM ends clean."""
    if variant[1] == "etcd" and not Path(os.environ.get("PODNET_ETCD_BIN", "/usr/bin/etcd")).exists():
        missing("etcd binary missing")
    lab = make_lab("--nodes", "2", "--dual-stack", *variant)
    lab.podnet("node", "add", "n3", "--lab", lab.name)
    lab.podnet("apply", "-f", "-", input="---\n".join(pinned_pod(f"p{i}", f"n{i}") for i in (1, 3)))
    failures = all_pairs(lab.wait_pods(2), PORT)
    assert not failures, "\n".join(failures[:20])
    n1 = f"pn-{lab.name}-n1"

    def vteps() -> set[str]:
        cp = subprocess.run(["bridge", "-n", n1, "-j", "fdb", "show", "dev", "pnvx"], capture_output=True, text=True)
        return {r.get("dst") for r in json.loads(cp.stdout or "[]")} if cp.returncode == 0 else set()
    if variant[1] == "vxlan":
        assert "198.18.0.13" in vteps()
    else:
        assert (lab.dir / "pki" / "agent-n3.crt").exists()
    lab.podnet("node", "delete", "n3", "--lab", lab.name)
    wait_for("n1 drops n3's VTEP", lambda: "198.18.0.13" not in vteps())
    assert not via(n1, {"198.18.0.13", "fd00:198:18::13"})
    assert lab.podnet("ipam", "check", check=False).returncode == 0
    assert f"pn-{lab.name}-n3" not in netns_list()


def test_a_node_leaves_a_kubernetes_mode_lab_through_the_api(make_lab):
    """Kubernetes mode: every write of the delete (cordon, drain, IPAM, the Node) goes
    through the lab's API server, as the admin. Adding is refused there (the nodes' tokens
    are made at `podnet up`), changing nothing."""
    lab = make_lab("--nodes", "3", "--datastore", "kubernetes")
    refused = lab.podnet("node", "add", "n4", "--lab", lab.name, check=False)
    assert refused.returncode == 1 and "sqlite and etcd" in refused.stderr, refused.stderr
    assert meta(lab)["spec"]["nodes"] == ["n1", "n2", "n3"]
    lab.podnet("apply", "-f", "-", input="---\n".join(pinned_pod(f"p{i}", f"n{i}") for i in (1, 3)))
    lab.wait_pods(2)
    assert blocks_of(lab, "n3")
    out = lab.podnet("node", "delete", "n3", "--lab", lab.name).stdout
    assert "node n3 left" in out and "pods drained" in out, out
    assert not blocks_of(lab, "n3") and [p.name for p in lab.pods("default")] == ["p1"]
    assert not [p.name for p in lab.pods() if p.node_name == "n3"]
    assert "n3" not in lab.podnet("get", "nodes").stdout
    assert lab.podnet("ipam", "check", check=False).returncode == 0
    assert f"pn-{lab.name}-n3" not in netns_list()
