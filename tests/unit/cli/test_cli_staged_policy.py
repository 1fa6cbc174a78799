"""`podnet promote` on a real SQLite store: a staged ClusterNetworkPolicy or NetworkPolicy
loses its `podnet.io/staged` annotation (and nothing else), once; other kinds are refused."""
from __future__ import annotations

import yaml

from cli_helpers import run, write

OBJS = """apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-x, annotations: {podnet.io/staged: "true", team: net}}
spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x, annotations: {podnet.io/staged: "true"}}
spec: {podSelector: {}}
"""


def _annotations(get_yaml: str) -> dict:
    """The object's annotations but apply's own record of the last applied manifest (which
    still says staged, as the file does: applying it again stages the policy again)."""
    ann = yaml.safe_load(get_yaml)["metadata"].get("annotations") or {}
    return {k: v for k, v in ann.items() if k != "podnet.io/last-applied"}


def test_promote_removes_only_the_staged_annotation(env, capsys):
    tmp, _ = env
    rc, _, err = run(capsys, "apply", "-f", write(tmp / "p.yaml", OBJS))
    assert rc == 0, err
    rc, out, _ = run(capsys, "promote", "cnp", "deny-x")
    assert rc == 0 and "promoted" in out
    rc, out, _ = run(capsys, "get", "cnp", "deny-x", "-o", "yaml")
    assert _annotations(out) == {"team": "net"}
    rc, out, _ = run(capsys, "promote", "cnp", "deny-x")
    assert rc == 0 and "already enforced" in out
    rc, out, _ = run(capsys, "promote", "netpol", "deny", "-n", "x")
    assert rc == 0
    rc, out, _ = run(capsys, "get", "netpol", "deny", "-n", "x", "-o", "yaml")
    assert _annotations(out) == {}
    rc, _, err = run(capsys, "promote", "ns", "x")
    assert rc != 0 and "only NetworkPolicy and ClusterNetworkPolicy can be staged" in err
