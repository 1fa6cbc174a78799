"""`podnet delete` and a pod's grace period (issue 17 §1), against a real SQLite store with
no kubelet: kubectl's flag rules, names after flags, and the wait for a pod to be gone."""
from __future__ import annotations

import yaml

from cli_helpers import run, write
from podnet.datastore.interface import open_datastore


def pods(tmp, *names, node="n1"):
    return write(tmp / "pods.yaml", yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n},
         "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}} for n in names]))


def test_a_scheduled_pod_is_marked_and_waited_for(env, capsys):
    tmp, url = env
    run(capsys, "apply", "-f", pods(tmp, "a", "b"))
    rc, out, err = run(capsys, "delete", "pod", "a", "--wait=false")
    assert (rc, out, err) == (0, 'pod "a" deleted\n', "")
    s = open_datastore(url)
    try:
        assert s.get("Pod", "default", "a").metadata["deletionGracePeriodSeconds"] == 30
    finally:
        s.close()
    assert "Terminating" in run(capsys, "get", "pods")[1]
    # nothing here runs pods: the wait gives up, and says so
    rc, out, err = run(capsys, "delete", "pod", "a", "--grace-period=5", "--timeout=0.3")
    assert rc == 1 and err == 'error: timed out waiting for pods "a" to be deleted\n'


def test_force_with_names_after_the_flags(env, capsys):
    tmp, _ = env
    run(capsys, "apply", "-f", pods(tmp, "a", "b"))
    rc, out, err = run(capsys, "delete", "pod", "--grace-period=0", "--force", "a", "b")
    assert rc == 0 and out == 'pod "a" deleted\npod "b" deleted\n'
    assert "Immediate deletion does not wait" in err
    assert run(capsys, "get", "pods")[2] == "No resources found in default namespace.\n"


def test_kubectl_rules_for_zero_and_now(env, capsys):
    tmp, url = env
    run(capsys, "apply", "-f", pods(tmp, "a"))
    run(capsys, "delete", "pod", "a", "--grace-period=0", "--wait=false")  # 0 without --force: 1 s
    s = open_datastore(url)
    try:
        assert s.get("Pod", "default", "a").metadata["deletionGracePeriodSeconds"] == 1
    finally:
        s.close()
    assert run(capsys, "delete", "pod", "a", "--now", "--grace-period=3")[0] == 1
    rc, _, err = run(capsys, "delete", "pod", "a", "--bogus")
    assert rc == 2 and "unrecognized arguments: --bogus" in err
