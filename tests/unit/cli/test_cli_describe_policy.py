"""`podnet describe pod` says which NetworkPolicies select the pod and what they allow."""
from __future__ import annotations

from pathlib import Path

from cli_helpers import run, write

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"

WEB_POD = """apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: podnet/serve, ports: [{name: http, containerPort: 8080}]}]}
"""


def test_describe_pod_shows_isolating_policies_and_their_rules(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", str(DEMO / "00-namespaces.yaml"))
    run(capsys, "apply", "-f", write(tmp / "web.yaml", WEB_POD))
    rc, out, _ = run(capsys, "describe", "pod", "web-0", "-n", "shop")
    assert rc == 0
    assert "Ingress: not isolated (everything allowed)" in out

    run(capsys, "apply", "-f", str(DEMO / "40-deny-web.yaml"))
    rc, out, _ = run(capsys, "describe", "pod", "web-0", "-n", "shop")
    assert "Ingress: isolated by shop/web-deny-all" in out
    assert "shop/web-deny-all: allows nothing" in out
    assert "Egress: not isolated" in out

    run(capsys, "apply", "-f", str(DEMO / "50-allow-client.yaml"))
    rc, out, _ = run(capsys, "describe", "pod", "web-0", "-n", "shop")
    assert "isolated by shop/web-allow-client, shop/web-deny-all" in out \
        or "isolated by shop/web-deny-all, shop/web-allow-client" in out
    rule = next(line for line in out.splitlines() if "web-allow-client rule 0" in line)
    assert "role=client" in rule and "8080" in rule or "http" in rule, rule
