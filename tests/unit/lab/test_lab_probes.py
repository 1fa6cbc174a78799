"""Readiness probes of the lab kubelet: parsing Kubernetes' readinessProbe (exec only)
and the thresholds of the prober, with a scripted probe runner and a fake clock."""
from __future__ import annotations

from podnet.lab.probes import ExecProbe, Prober, readiness_probe
from builders import make_pod


def pod(probe):
    c = {"name": "srv", "image": "podnet/serve"}
    if probe is not None:
        c["readinessProbe"] = probe
    return make_pod("default", "p", [], mutate=lambda d: d["spec"].update(containers=[c]))


def test_parse_exec_probe_with_kubernetes_defaults_and_floors():
    assert readiness_probe(pod(None)) is None
    assert readiness_probe(pod({"tcpSocket": {"port": 80}})) is None  # not honoured: see the module
    p = readiness_probe(pod({"exec": {"command": ["sh", "-c", "true"]}}))
    assert p == ExecProbe(("sh", "-c", "true"), 10.0, 1.0, 1, 3)
    p = readiness_probe(pod({"exec": {"command": ["x"]}, "periodSeconds": 0, "failureThreshold": "bad"}))
    assert p is not None and p.period == 1.0 and p.failure_threshold == 3


def test_prober_flips_after_the_thresholds_and_forgets():
    now = [0.0]
    results = [True]
    changes: list[tuple[tuple[str, str], bool]] = []
    pr = Prober(lambda k, r: changes.append((k, r)), run=lambda ns, p, env: results[0], clock=lambda: now[0])
    probe = ExecProbe(("x",), period=1.0, failure_threshold=2, success_threshold=1)
    assert pr.first(("default", "p"), "ns", probe, {}) is True
    results[0] = False
    now[0] = 0.5
    pr.tick()
    assert changes == []  # not due yet
    now[0] = 1.0
    pr.tick()
    assert changes == []  # one failure of two
    now[0] = 2.0
    pr.tick()
    assert changes == [(("default", "p"), False)]
    results[0] = True
    now[0] = 3.0
    pr.tick()
    assert changes[-1] == (("default", "p"), True)
    pr.forget(("default", "p"))
    results[0] = False
    for t in (4.0, 5.0, 6.0):
        now[0] = t
        pr.tick()
    assert len(changes) == 2
