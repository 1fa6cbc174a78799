"""`podnet flows` in a 2-node lab (issue 18 §3): real connections from a pod, and what the
kernel's own log and conntrack say about them, read back through every node's agent.
A deny shows DROPPED with the policy isolating the pod; an allow FORWARDED with its policy
and rule index; a Service connection its VIP, name and the endpoint the kernel chose; a
Service without endpoints REJECTED; a finished connection its packets and bytes each way;
a connection to the outside its SNAT address; a flood
stays within the ring's cap and is counted lost.

One lab for the module (always torn down); tests run in file order on its state.
"""
from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Iterator

import pytest

from lablib import NETNS_ANNOTATION, Lab, probe_tcp
from podnet.dataplane.net.sysctl import call_in_netns

pytestmark = [pytest.mark.root, pytest.mark.slow]
PORT = 8080
CAP = 64  # the agents' ring, small so a flood overflows it

WORKLOADS = f"""apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: client}}}}
spec:
  nodeName: n1
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: server, labels: {{app: srv}}}}
spec:
  nodeName: n2
  containers: [{{name: srv, image: podnet/serve, ports: [{{containerPort: {PORT}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: srv}}
  ports: [{{name: http, port: 80, targetPort: {PORT}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  selector: {{app: nobody}}
  ports: [{{name: t, port: 80, targetPort: {PORT}}}]
"""
DENY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-srv}
spec:
  podSelector: {matchLabels: {app: srv}}
  policyTypes: [Ingress]
"""
ALLOW = f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-client}}
spec:
  podSelector: {{matchLabels: {{app: srv}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: nobody}}}}}}]
  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]
    ports: [{{port: {PORT}}}]
"""


@pytest.fixture(scope="module")
def lab(lab_home: Any) -> Iterator[Lab]:
    lab = Lab("fl" + secrets.token_hex(2), lab_home)
    lab.env["PODNET_FLOWS_CAP"] = str(CAP)
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack", timeout=300)
        lab.podnet("apply", "-f", "-", input=WORKLOADS)
        lab.wait_pods(2)
        yield lab
    finally:
        lab.down()


def pod(lab: Lab, name: str) -> Any:
    return next(p for p in lab.pods() if p.name == name)


def connect(lab: Lab, ip: str, port: int) -> str:
    netns = pod(lab, "client").annotations[NETNS_ANNOTATION]

    def body() -> str:
        try:
            return probe_tcp(ip, port, timeout=1.0)
        except OSError as e:
            return f"ERROR: {e}"
    return call_in_netns(netns, body)


def flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.podnet("flows", "--lab", lab.name, "-o", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_flow(lab: Lab, pred: Any, *args: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        recs = [r for r in flows(lab, *args) if pred(r)]
        if recs:
            return recs[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no such flow among {flows(lab, '-A')}")
        time.sleep(0.3)


def svc_ip(lab: Lab, name: str) -> str:
    s = lab.store()
    try:
        return str(s.get("Service", "default", name).spec["clusterIP"])
    finally:
        s.close()


def wait_blocked(lab: Lab, ip: str, blocked: bool) -> None:
    deadline = time.monotonic() + 10
    while connect(lab, ip, PORT).startswith("ERROR") != blocked:
        assert time.monotonic() < deadline, f"{ip}:{PORT} never became {'blocked' if blocked else 'open'}"
        time.sleep(0.2)


def test_deny_shows_dropped_with_the_isolating_policy(lab: Lab) -> None:
    server = pod(lab, "server").pod_ips[0]
    lab.podnet("apply", "-f", "-", input=DENY)
    wait_blocked(lab, server, True)
    t0 = time.time()
    assert connect(lab, server, PORT).startswith("ERROR")
    r = wait_flow(lab, lambda r: r["time"] >= t0 - 1, "--verdict", "dropped", "--to", "server", "--port", str(PORT))
    assert r["node"] == "n2" and r["direction"] == "ingress"
    assert r["source"]["pod"] == "default/client" and r["destination"]["pod"] == "default/server"
    [d] = r["decisions"]
    assert d["reason"] == "isolated, no rule allowed it" and d["policies"] == ["deny-srv"]
    # the table names it too
    table = lab.podnet("flows", "--lab", lab.name, "--verdict", "dropped", "--policy", "deny-srv").stdout
    assert "DROPPED" in table and "isolated by deny-srv" in table


@pytest.mark.parametrize("family", [4, 6])
def test_every_cell_probe_saw_has_its_flow(lab: Lab, family: int) -> None:
    """Differential (issue 18 §3): `podnet probe` makes real connections between every pair
    of pods; each cell it saw blocked has a dropped flow naming a policy that isolates the
    destination, each it saw open (or refused: reached, but nothing listens there, as on
    the DNS pods) a forwarded flow (a pod reaching itself crosses no node); every pod of
    every namespace, IPv4 and IPv6."""
    t0 = time.time()
    tables = json.loads(lab.podnet("probe", "-A", "--family", str(family), "--port", str(PORT),
                                   "-o", "json").stdout)["tables"]
    cells = [c for t in tables for c in t["cells"] if c["from"] != c["to"] and c["allowed"] is not None]
    assert any(c["allowed"] is False for c in cells) and any(c["allowed"] for c in cells), cells
    isolating = {"default/server": "deny-srv"}
    for c in cells:
        src, dst = (x if "/" in x else f"default/{x}" for x in (c["from"], c["to"]))

        def same(r: dict[str, Any]) -> bool:
            return (r["time"] >= t0 - 1 and r["source"].get("pod") == src
                    and (":" in r["source"]["ip"]) == (family == 6)
                    and dst in (r["destination"].get("pod"), (r.get("endpoint") or {}).get("pod")))
        if c["allowed"] or c.get("outcome") == "refused":  # refused: reached, nothing listens
            wait_flow(lab, same, "-A", "--verdict", "forwarded")
        else:
            r = wait_flow(lab, same, "-A", "--verdict", "dropped")
            assert isolating[dst] in r["decisions"][0]["policies"], r


def test_allow_shows_forwarded_with_policy_and_rule_index(lab: Lab) -> None:
    server = pod(lab, "server").pod_ips[0]
    lab.podnet("apply", "-f", "-", input=ALLOW)
    wait_blocked(lab, server, False)
    t0 = time.time()
    assert not connect(lab, server, PORT).startswith("ERROR")
    r = wait_flow(lab, lambda r: r["time"] >= t0 - 1 and r["node"] == "n2" and r["decisions"],
                  "--verdict", "forwarded", "--policy", "allow-client")
    d = next(d for d in r["decisions"] if d.get("policy"))
    assert (d["policy"], d["direction"], d["rule"]) == ("allow-client", "ingress", 1)
    assert r["destination"]["pod"] == "default/server" and r["destination"]["port"] == PORT


def test_service_connection_shows_vip_service_and_endpoint(lab: Lab) -> None:
    vip, server = svc_ip(lab, "web"), pod(lab, "server").pod_ips[0]
    t0 = time.time()
    assert not connect(lab, vip, 80).startswith("ERROR")
    r = wait_flow(lab, lambda r: r["time"] >= t0 - 1 and r["node"] == "n1" and r.get("endpoint"),
                  "--to", "web")
    assert r["destination"]["ip"] == vip and r["destination"]["port"] == 80
    assert r["service"] == "default/web:http"
    assert r["endpoint"] == {"ip": server, "port": PORT, "pod": "default/server"}
    assert r["verdict"] == "forwarded"


def test_a_finished_connection_shows_packets_bytes_and_duration(lab: Lab) -> None:
    """The kernel's own counters, from the conntrack entry's DESTROY: deleting the entry on
    the client's node (as conntrack would after TIME_WAIT) ends the record with them."""
    vip, client = svc_ip(lab, "web"), pod(lab, "client").pod_ips[0]
    t0 = time.time()
    answer = connect(lab, vip, 80)
    assert not answer.startswith("ERROR")
    r = wait_flow(lab, lambda r: r["time"] >= t0 - 1 and r["node"] == "n1" and r.get("ctId"), "--to", "web")
    subprocess.run(["ip", "netns", "exec", f"pn-{lab.name}-n1", "conntrack", "-D", "-p", "tcp",
                    "--orig-src", client, "--orig-dst", vip, "--orig-port-dst", "80"],
                   check=True, capture_output=True)
    done = wait_flow(lab, lambda f: f.get("ctId") == r["ctId"] and f.get("finished"), "--to", "web")
    fin = done["finished"]
    # SYN, ACK, the request, FIN and ACK out; SYN-ACK, the answer, FIN and ACKs back
    assert fin["packets"]["sent"] >= 4 and fin["packets"]["received"] >= 3, fin
    assert fin["bytes"]["sent"] >= 4 * 40 + len("probe\n"), fin
    assert fin["bytes"]["received"] >= 3 * 40 + len(answer), fin
    assert 0 <= fin["duration"] < 60 and fin["ended"] >= t0 - 1
    table = lab.podnet("flows", "--lab", lab.name, "--to", "web").stdout
    assert f"{fin['packets']['sent']}/{fin['packets']['received']} packets" in table


def test_service_without_endpoints_shows_rejected(lab: Lab) -> None:
    vip = svc_ip(lab, "empty")
    t0 = time.time()
    assert connect(lab, vip, 80).startswith("ERROR")
    r = wait_flow(lab, lambda r: r["time"] >= t0 - 1, "--verdict", "rejected", "--to", vip)
    assert r["service"] == "default/empty:t" and r["decisions"][0]["reason"] == "no endpoints"


def test_outside_connection_shows_the_snat_address(lab: Lab) -> None:
    client = pod(lab, "client")
    t0 = time.time()
    out = lab.podnet("exec", "client", "--", "curl", "-s", "-m", "3", "http://203.0.113.10/").stdout
    assert out.strip() == f"outside/echo {client.status['hostIP']}"  # what the outside saw
    r = wait_flow(lab, lambda r: r["time"] >= t0 - 1 and r.get("snat"), "--to", "203.0.113.10")
    assert r["node"] == "n1" and r["snat"] == client.status["hostIP"] and r["destination"]["outside"] is True
    assert r["source"]["pod"] == "default/client" and r["verdict"] == "forwarded"


def test_follow_shows_new_flows_live(lab: Lab) -> None:
    vip = svc_ip(lab, "web")
    p = subprocess.Popen([sys.executable, "-m", "podnet.cli.main", "flows", "--lab", lab.name, "-f", "-o", "json",
                          "--since", "1s", "--to", "web"], env=lab.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # following: what came before --since is not the point
        t0 = time.time()
        assert not connect(lab, vip, 80).startswith("ERROR")
        got: list[dict[str, Any]] = []

        def read() -> None:
            assert p.stdout is not None
            for line in p.stdout:
                r = json.loads(line)
                if r["time"] >= t0 - 0.5 and r.get("endpoint"):
                    got.append(r)
                    return
        th = threading.Thread(target=read, daemon=True)
        th.start()
        th.join(10)
        assert got and got[0]["service"] == "default/web:http" and got[0]["destination"]["ip"] == vip
    finally:
        p.terminate()
        p.wait(5)


def test_describe_and_metrics_count_per_policy(lab: Lab) -> None:
    out = lab.podnet("describe", "networkpolicy", "allow-client").stdout
    allowed = int(re.search(r"Allowed:\s+(\d+)", out)[1])  # type: ignore[index]
    assert allowed >= 2 and re.search(r"Ingress rule 1:\s+\d+", out), out
    out = lab.podnet("describe", "networkpolicy", "deny-srv").stdout
    assert int(re.search(r"Denied:\s+(\d+)", out)[1]) >= 1, out  # type: ignore[index]
    n2 = next(x for x in _node_netns(lab) if x.endswith("-n2"))
    text = call_in_netns(n2, lambda: urllib.request.urlopen("http://127.0.0.1:9091/metrics", timeout=5).read().decode())
    m = re.search(r'podnet_flows_policy_total\{node="n2",policy="default/allow-client",direction="ingress",'
                  r'verdict="forwarded"\} (\d+)', text)
    assert m and int(m[1]) >= allowed, text
    assert re.search(r'podnet_flows_total\{node="n2",verdict="dropped"\} [1-9]', text), text


def test_a_flood_stays_within_the_cap_and_is_counted_lost(lab: Lab) -> None:
    vip = svc_ip(lab, "empty")
    netns = pod(lab, "client").annotations[NETNS_ANNOTATION]
    n = 20 * CAP

    def flood() -> None:
        for _ in range(n):
            with socket.socket() as s:
                s.settimeout(0.5)
                try:
                    s.connect((vip, 80))
                except OSError:
                    pass
    n1 = next(x for x in _node_netns(lab) if x.endswith("-n1"))
    from podnet.agent.flow_server import query
    before, _ = query(n1)
    call_in_netns(netns, flood)
    deadline = time.monotonic() + 10
    while True:
        stats, recs = query(n1)
        stored = list(recs)
        if stats["seen"] - before["seen"] >= n or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    seen = stats["seen"] - before["seen"]
    assert stats["cap"] == CAP and len(stored) <= CAP and stats["stored"] <= CAP
    # every attempt was recorded once, or the kernel's overflow was reported ...
    assert seen == n or (seen < n and stats["overruns"] > before["overruns"]), (seen, stats)
    # ... and what the ring could not keep is counted
    assert stats["lost"] - before["lost"] >= seen - CAP
    out = lab.podnet("flows", "--lab", lab.name, "-A", "--verdict", "rejected")
    assert "lost:" in out.stderr and out.stdout.count("REJECTED") <= 2 * CAP


def _node_netns(lab: Lab) -> list[str]:
    from podnet.lab.topology import spec_from_dict
    meta = json.loads((lab.dir / "lab.json").read_text())
    return [n.netns for n in spec_from_dict(meta["spec"]).nodes]


CNP_DENY = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: admin-deny-srv}
spec:
  tier: Admin
  priority: 5
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: srv}}}}
  ingress: [{name: nobody-in, action: Deny, from: [{namespaces: {}}]}]
"""


def test_cluster_policy_deny_shows_dropped_with_its_rule(lab: Lab) -> None:
    """An Admin tier Deny decides before any NetworkPolicy: the flow names it (tier, policy,
    rule, action), in the records and in the table filtered by the policy's name."""
    server = pod(lab, "server").pod_ips[0]
    lab.podnet("apply", "-f", "-", input=CNP_DENY)
    try:
        wait_blocked(lab, server, True)
        assert connect(lab, server, PORT).startswith("ERROR")
        # only this policy's rule can name it: no need to tell this attempt from wait_blocked's
        r = wait_flow(lab, lambda r: any(d.get("policy") == "admin-deny-srv" for d in r["decisions"]),
                      "--verdict", "dropped", "--to", "server", "--port", str(PORT))
        [d] = r["decisions"]
        assert (d["policy"], d["direction"], d["rule"]) == ("admin-deny-srv", "ingress", 0)
        assert d["reason"] == "Admin tier ClusterNetworkPolicy rule: Deny" and r["node"] == "n2"
        table = lab.podnet("flows", "--lab", lab.name, "--verdict", "dropped", "--policy", "admin-deny-srv").stdout
        assert "DROPPED" in table and "Admin tier ClusterNetworkPolicy rule: Deny (admin-deny-srv rule 0)" in table
    finally:
        lab.podnet("delete", "-f", "-", input=CNP_DENY, check=False)


CNP_STAGED = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: staged-deny-srv, annotations: {podnet.io/staged: "true"}}
spec:
  tier: Admin
  priority: 6
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: srv}}}}
  ingress: [{name: nobody-in, action: Deny, from: [{namespaces: {}}]}]
"""


def test_a_staged_policy_is_named_on_the_flows_it_would_deny(lab: Lab) -> None:
    """Issue 20 §2: a staged Admin Deny is not enforced (the connection passes), but the
    forwarded flow says it would be denied and by what; promoting it enforces it."""
    server = pod(lab, "server").pod_ips[0]
    lab.podnet("apply", "-f", "-", input=CNP_STAGED)
    try:
        deadline, r = time.monotonic() + 15, None
        while r is None:
            t0 = time.time()
            assert not connect(lab, server, PORT).startswith("ERROR"), "a staged policy was enforced"
            time.sleep(0.5)
            r = next((x for x in flows(lab, "--verdict", "forwarded", "--to", "server", "--port", str(PORT))
                      if x["time"] >= t0 - 0.1 and x["node"] == "n2" and x.get("staged")), None)
            assert r is not None or time.monotonic() < deadline, \
                [(x["time"] - t0, x["node"], x["verdict"], x.get("staged"))
                 for x in flows(lab, "--to", "server", "--port", str(PORT))]
        assert r["staged"]["wouldBe"] == "denied"
        assert "staged-deny-srv" in r["staged"]["cause"] and "Admin" in r["staged"]["cause"]
        table = lab.podnet("flows", "--lab", lab.name, "--verdict", "forwarded", "--to", "server").stdout
        assert "would be denied by staged policies" in table and "staged-deny-srv" in table
        lab.podnet("promote", "clusternetworkpolicy", "staged-deny-srv")
        wait_blocked(lab, server, True)
    finally:
        lab.podnet("delete", "-f", "-", input=CNP_STAGED, check=False)
