"""`make demo` is the README's main command: it must run end to end, every check passing."""
from __future__ import annotations

import secrets

import pytest

from lablib import Lab

pytestmark = pytest.mark.root


def test_demo_runs_end_to_end_and_every_check_passes(lab_home):
    lab = Lab("d" + secrets.token_hex(2), lab_home)
    try:
        cp = lab.podnet("demo", "--name", lab.name, "--down", check=False, timeout=300)
    finally:
        lab.down()
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out
    assert "every check passed" in out, out
    for step in ("1. Every pod has its own IP", "2. Pod to pod", "3. A Service", "4. Cluster DNS",
                 "5. NAT outgoing", "6. NetworkPolicy", "7. The Kubernetes API"):
        assert step in out, f"step {step!r} missing:\n{out}"
    assert "✘" not in out, out
    assert f"lab {lab.name!r} down" in out, out


def test_demo_routed_with_bgp_on_the_kubernetes_datastore(lab_home):
    """`podnet demo --routing bgp --datastore kubernetes`: the same steps on a BGP lab (NAT
    outgoing off now gets its answer back: the router learned the block), and step 8
    (issue 21 §3); and the whole demo (Services, DNS, policy, NAT, kubectl) in Kubernetes
    mode, every lab process talking only to the API server (issue 15 §2). One lab for both:
    CI's time is short."""
    lab = Lab("d" + secrets.token_hex(2), lab_home)
    try:
        cp = lab.podnet("demo", "--name", lab.name, "--routing", "bgp", "--datastore", "kubernetes",
                        check=False, timeout=300)
        url = (lab.dir / "datastore.url").read_text().strip() if cp.returncode == 0 else ""
        logs = "" if cp.returncode == 0 else "\n".join(
            f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-40:])
            for f in sorted((lab.dir / "logs").glob("[ak]*.log")))  # agents, apiserver, kubelet
    finally:
        lab.down()
    out = cp.stdout + cp.stderr + logs
    assert cp.returncode == 0 and "every check passed" in out and "✘" not in out, out
    assert "on the kubernetes datastore" in out and url.startswith("kubernetes://"), (url, out)
    for step in ("3. A Service", "4. Cluster DNS", "6. NetworkPolicy", "7. The Kubernetes API"):
        assert step in out, f"step {step!r} missing:\n{out}"
    assert "8. Routed, not hidden" in out, out
    assert "the router learned n2's new block 10.245.0.0/28 over BGP" in out, out
    assert "the outside world reached pod pub at 10.245.0.5, which saw the outside's own address" in out, out
