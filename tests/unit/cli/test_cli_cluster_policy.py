"""ClusterNetworkPolicy through the CLI on a real SQLite store: apply validates it (errors
name the field), `get cnp` prints kubectl's columns (NAME, TIER, PRIORITY, AGE),
`describe pod` lists the cluster policies selecting the pod and `describe cnp` the policy."""
from __future__ import annotations

from cli_helpers import run, write

OBJS = """apiVersion: v1
kind: Namespace
metadata: {name: mon, labels: {team: mon}}
---
apiVersion: v1
kind: Pod
metadata: {name: prom-0, namespace: mon, labels: {app: prom}}
spec: {containers: [{name: p, image: podnet/serve, ports: [{name: metrics, containerPort: 9090}]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: protect-mon}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {team: mon}}}
  ingress:
  - {name: from-mon, action: Accept, from: [{namespaces: {matchLabels: {team: mon}}}], protocols: [{destinationNamedPort: metrics}]}
  - {action: Deny, from: [{namespaces: {}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: default-deny}
spec:
  tier: Baseline
  priority: 1000
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{networks: [0.0.0.0/0]}]}]
"""


def test_apply_get_and_describe(env, capsys):
    tmp, _ = env
    rc, out, err = run(capsys, "apply", "-f", write(tmp / "cnp.yaml", OBJS))
    assert rc == 0, err
    assert "clusternetworkpolicy.policy.networking.k8s.io/protect-mon created" in out
    rc, out, _ = run(capsys, "get", "cnp")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TIER", "PRIORITY", "AGE"]
    assert [ln.split()[:3] for ln in lines[1:]] == [["default-deny", "Baseline", "1000"],
                                                    ["protect-mon", "Admin", "10"]]
    rc, out, _ = run(capsys, "describe", "pod", "prom-0", "-n", "mon")
    tail = out[out.index("ClusterNetworkPolicy:"):].splitlines()
    assert tail[1:4] == ["  Admin tier, priority 10: protect-mon",
                         "    ingress rule 0 (from-mon): Accept from pods in namespaces team=mon; "
                         "ports named port metrics (TCP/9090)",
                         "    ingress rule 1: Deny from pods in every namespace; all ports"]
    assert tail[4] == "  Baseline tier, priority 1000: default-deny"
    rc, out, _ = run(capsys, "describe", "cnp", "protect-mon")
    body = out[out.index("Tier:"):].splitlines()
    assert body == ["Tier:       Admin", "Priority:   10", "Subject:    every pod in namespaces team=mon",
                    "Ingress:", "  rule 0 (from-mon): Accept from pods in namespaces team=mon; ports named port metrics",
                    "  rule 1: Deny from pods in every namespace; all ports",
                    "Egress: no rules (does not affect it)"]


def test_apply_refuses_a_bad_policy_naming_the_field(env, capsys):
    tmp, _ = env
    bad = OBJS.split("---\n")[2].replace("priority: 10", "priority: 5000").replace("action: Deny", "action: Drop")
    rc, out, err = run(capsys, "apply", "-f", write(tmp / "bad.yaml", bad))
    assert rc != 0
    assert "spec.priority: 5000 is not in 0..1000" in err and 'spec.ingress[1].action: "Drop"' in err
    rc, out, _ = run(capsys, "get", "cnp")
    assert "protect-mon" not in out
