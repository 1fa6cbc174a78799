"""The whole chain in a real lab (`podnet up`, 2 nodes, dual stack): the agents' policy and
NAT roles enforce what calc predicts, `podnet probe` reports it, pods on different nodes.
The lab is named `pol<hex>` (a lab's namespaces are `pn-pol<hex>-*`)."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from needs import missing

from podnet.api.objects import Pod
from podnet.calc.model import ClusterState
from podnet.calc.policy.table import TruthTable, e2e_model, predict
from podnet.datastore.interface import open_datastore
from policy_cases import CLUSTER_CASES_FILE, load_cases

pytestmark = pytest.mark.root
CASES = load_cases()
LAB_CASES = ["deny-all-ingress", "pod-and-namespace-selector-and", "egress-named-port",
             "default-deny-both-egress-to-z"]
# ClusterNetworkPolicy (tests/golden/policy/cluster_cases.yaml) through the write path, the
# agents' watches and both nodes' nftables
CLUSTER_CASES = load_cases(CLUSTER_CASES_FILE)
LAB_CLUSTER_CASES = ["admin-pass-falls-to-baseline", "admin-accept-overrides-v1-deny", "ingress-named-port",
                     "rule-order-within-policy"]


class Lab:
    def __init__(self, home: Path):
        self.name = "pol" + secrets.token_hex(2)
        self.env = {**os.environ, "PODNET_HOME": str(home)}
        self.env.pop("PODNET_DATASTORE", None)
        self.home = home

    def podnet(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([sys.executable, "-m", "podnet.cli.main", *args], env=self.env, input=input,
                            capture_output=True, text=True, timeout=180)
        if check and cp.returncode != 0:
            raise AssertionError(f"podnet {' '.join(args)}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
        return cp

    def state(self) -> ClusterState:
        url = (self.home / "labs" / self.name / "datastore.url").read_text().strip()
        s = open_datastore(url)
        try:
            objs = [o for k in ("Namespace", "Pod", "NetworkPolicy", "ClusterNetworkPolicy", "Node")
                    for o in s.list(k).items]
        finally:
            s.close()
        return ClusterState.from_objects(objs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        missing("needs root")
    lab = Lab(tmp_path_factory.mktemp("pn-pol-home"))
    try:
        lab.podnet("up", "--name", lab.name, "--nodes", "2", "--dual-stack")
        docs = []
        for o in e2e_model():
            d = o.to_dict()
            d.pop("status", None)
            d["spec"].pop("nodeName", None) if o.kind == "Pod" else None
            docs.append(d)
        lab.podnet("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        deadline = time.monotonic() + 90
        while True:
            pods = [p for p in lab.state().pods if p.namespace in ("x", "y", "z")]
            if len(pods) == 9 and all(p.ready and len(p.pod_ips) == 2 for p in pods):
                break
            assert time.monotonic() < deadline, [(p.key, p.phase) for p in pods]
            time.sleep(0.5)
        yield lab
    finally:
        lab.podnet("down", "--name", lab.name, "--force", check=False)


def _probe(lab: Lab, port: int, protocol: str, family: int) -> TruthTable:
    out = json.loads(lab.podnet("probe", "-A", "--port", str(port), "--protocol", protocol,
                                "--family", str(family), "-o", "json").stdout)["tables"][0]
    t = TruthTable(out["from"], out["to"], port=port, protocol=protocol)
    for c in out["cells"]:
        t.cells[(c["from"], c["to"])] = c["allowed"]
    return t


def _only_model(t: TruthTable) -> TruthTable:
    """Keep x,y,z pods (the lab runs its own pods too, e.g. cluster DNS)."""
    keep = [r for r in t.rows if r.split("/")[0] in ("x", "y", "z")]
    out = TruthTable(keep, [c for c in t.cols if c in keep], port=t.port, protocol=t.protocol)
    out.cells = {k: v for k, v in t.cells.items() if k[0] in keep and k[1] in keep}
    return out


def _policies_yaml(step) -> str:
    return yaml.safe_dump_all([p.raw for p in step.policies])


@pytest.mark.parametrize("name", LAB_CASES + [f"cluster:{c}" for c in LAB_CLUSTER_CASES])
def test_lab_probe_equals_predicted_equals_expected(lab, name):
    step = CLUSTER_CASES[name[8:]][0] if name.startswith("cluster:") else CASES[name][0]
    lab.podnet("apply", "-f", "-", input=_policies_yaml(step))
    try:
        for pr in step.probes:
            state = lab.state()
            model_pods = sorted((p for p in state.pods if p.namespace in ("x", "y", "z")),
                                key=lambda p: (p.namespace, p.name))
            predicted = predict(state, pr.port, pr.protocol, pr.family, sources=model_pods, targets=model_pods)
            assert predicted.diff(pr.expected) == []
            deadline = time.monotonic() + 20  # the agents sync within a moment of the change
            while True:
                real = _only_model(_probe(lab, pr.port, pr.protocol, pr.family))
                if real.diff(predicted) == [] or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert real.diff(predicted) == [], f"{name} {pr.protocol}/{pr.port}\n{real.text()}"
    finally:
        lab.podnet("delete", "-f", "-", input=_policies_yaml(step), check=False)


def test_lab_nat_outgoing_reaches_the_outside(lab):
    out = json.loads(lab.podnet("probe", "-n", "x", "--to", "203.0.113.10", "-o", "json").stdout)
    assert all(c["allowed"] for c in out["tables"][0]["cells"]), out


def test_probe_table_tells_a_closed_port_from_a_denial(lab):
    # Nothing listens on 9 in the model's pods: the connection is refused, which the
    # table shows as R (reached the pod), not X (dropped by a policy).
    out = lab.podnet("probe", "-n", "x", "--port", "9").stdout
    rows = [line.split("\t") for line in out.splitlines() if line.startswith("x/")]
    assert rows and all(cell == "R" for row in rows for cell in row[1:]), out
    assert "R: refused: nothing listens" in out


def test_lab_trace_names_the_cluster_rule_and_the_kernel_agrees(lab):
    """`podnet trace` names the tier, policy, rule and action that decided, and the packet
    the kernel traced went the same way (its `cnp/` rule counted it)."""
    step = CLUSTER_CASES["rule-order-within-policy"][0]
    lab.podnet("apply", "-f", "-", input=_policies_yaml(step))
    try:
        cnp = "Admin tier, ClusterNetworkPolicy b-then-y, ingress rule"
        for src, want_rule, want_text in (
                ("y/a", "cnp/b-then-y/ingress/1", f"DROP: denied by {cnp} 1 (rest-of-y): Deny"),
                ("y/b", "cnp/b-then-y/ingress/0", f"allowed by {cnp} 0 (y-b-in): Accept")):
            deadline = time.monotonic() + 20
            while True:
                cp = lab.podnet("trace", "--lab", lab.name, src, "x/a:80", "-o", "json", check=False)
                t = json.loads(cp.stdout)
                pol = [s for h in t["request"]["hops"] for s in h["steps"]
                       if s["kind"] == "policy" and s["data"].get("direction") == "ingress"]
                ok = t["confirmation"] is not None and t["confirmation"]["ok"]
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert pol and want_text in pol[0]["text"], pol
            assert pol[0]["data"]["rule"] == want_rule and pol[0]["data"]["tier"] == "Admin"
            bad = [c["line"] for c in t["confirmation"]["checks"] if not c["ok"]]
            assert ok and not bad, bad
    finally:
        lab.podnet("delete", "-f", "-", input=_policies_yaml(step), check=False)
