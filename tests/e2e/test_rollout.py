"""Pods end gracefully (issue 17 §1): no request fails through scale 3 -> 1 -> 3 and
deleting each pod in turn, with a client loop on the Service's virtual IPs (IPv4 and
IPv6), on direct routes and on the VXLAN overlay; and a deleted pod really passes
through Terminating (endpoint ready: false, serving and terminating) before it is gone,
and so does a namespace with a pod still ending.
"""
from __future__ import annotations

import time

import pytest
import yaml

import rollout_lib
from podnet.api.objects import EndpointSlice

pytestmark = pytest.mark.root


@pytest.mark.parametrize("encap", ["none", "vxlan"])
def test_rollout_loses_no_request(make_lab, encap):
    lab = make_lab("--nodes", "2", "--dual-stack", "--encap", encap)
    out = rollout_lib.run(lab, graceful=True, dual_stack=True)
    assert out.total >= rollout_lib.MIN_REQUESTS
    assert set(out.by_family) == {"IPv4", "IPv6"} and min(out.by_family.values()) >= 300, out.by_family
    assert out.failed == 0, out.as_dict()


def test_a_deleted_pod_is_terminating_first(make_lab):
    lab = make_lab("--nodes", "1")
    lab.podnet("apply", "-f", "-", input=rollout_lib.manifests("gone", 2, True, False))
    pods = rollout_lib.wait_settled(lab, "gone", 2)
    victim = pods[0]
    t0 = time.monotonic()
    lab.podnet("delete", "pod", victim.name, "--wait=false")
    store = lab.store()
    try:
        cur = store.get("Pod", "default", victim.name)
        assert cur.deletion_timestamp and cur.metadata["deletionGracePeriodSeconds"] == 5
        conds = None
        while conds is None and time.monotonic() - t0 < 5:
            for s in store.list("EndpointSlice", "default").items:
                assert isinstance(s, EndpointSlice)
                for e in s.raw.get("endpoints") or []:
                    if (e.get("targetRef") or {}).get("name") == victim.name and \
                            (e.get("conditions") or {}).get("terminating"):
                        conds = e["conditions"]
            time.sleep(0.02)
        assert conds == {"ready": False, "serving": True, "terminating": True}
        # the preStop sleep (1 s) runs before the pod can go; then it goes well before 5 s
        while True:
            try:
                store.get("Pod", "default", victim.name)
            except Exception:  # noqa: BLE001 - NotFound: gone
                break
            assert time.monotonic() - t0 < 5, "the pod stayed after its grace period"
            time.sleep(0.05)
        assert time.monotonic() - t0 >= 1.0
    finally:
        store.close()
    # a force delete takes the other pod at once
    other = pods[1]
    cp = lab.podnet("delete", "pod", other.name, "--grace-period=0", "--force")
    assert "Immediate deletion" in cp.stderr
    assert other.name not in {p.name for p in lab.pods("default")}


def test_a_namespace_waits_for_its_ending_pods(make_lab, tmp_path):
    """Also the exec form of preStop: it runs in the pod's netns with the pod's env."""
    lab = make_lab("--nodes", "1")
    hook = ["sh", "-c", f"sleep 4; ip -o addr show eth0 > {tmp_path}/prestop-$POD_NAME"]
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "leaving"}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow", "namespace": "leaving"},
             "spec": {"terminationGracePeriodSeconds": 10,
                      "containers": [{"name": "c", "image": "podnet/serve", "ports": [{"containerPort": 80}],
                                      "lifecycle": {"preStop": {"exec": {"command": hook}}}}]}}]
    lab.podnet("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    [pod] = lab.wait_pods(1, namespace="leaving")
    t0 = time.monotonic()
    lab.podnet("delete", "namespace", "leaving", "--wait=false")
    store = lab.store()
    try:
        assert store.get("Namespace", "", "leaving").status["phase"] == "Terminating"
    finally:
        store.close()
    refused = lab.podnet("apply", "-f", "-", input=yaml.safe_dump(
        {**docs[1], "metadata": {"name": "late", "namespace": "leaving"}}), check=False)
    assert refused.returncode != 0 and "being terminated" in refused.stderr
    lab.podnet("delete", "namespace", "leaving", "--ignore-not-found")  # waits until it is gone
    assert time.monotonic() - t0 >= 4.0  # the pod's preStop ran first
    assert lab.podnet("get", "namespace", "leaving", check=False).returncode != 0
    assert not lab.pods("leaving")
    ran = (tmp_path / "prestop-slow").read_text()
    assert pod.pod_ips[0] + "/32" in ran, ran
