"""The lab on etcd: a real etcd on the control-plane node's underlay address, agents and
kubelet reaching it over the underlay, the CLI through the node's namespace."""
from __future__ import annotations

import socket

import pytest

from lablib import all_pairs, manifests
from podnet.dataplane.net.sysctl import call_in_netns

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.etcd]
PORT = 8181


def test_etcd_lab_pod_to_pod(make_lab):
    lab = make_lab("--nodes", "2", "--dual-stack", "--datastore", "etcd")
    url = (lab.dir / "datastore.url").read_text().strip()
    assert url.startswith("etcd://198.18.0.11:2379") and f"netns=pn-{lab.name}-n1" in url
    def reach() -> bool:
        with socket.create_connection(("198.18.0.11", 2379), timeout=1):
            return True
    assert call_in_netns(f"pn-{lab.name}-n2", reach)  # a node reaches it over the underlay
    out = lab.podnet("get", "nodes", "-o", "wide").stdout
    assert out.count("healthy") == 2
    lab.podnet("apply", "-f", "-", input=manifests(2, 2, PORT))
    pods = lab.wait_pods(4)
    failures = all_pairs(pods, PORT)
    assert not failures, "\n".join(failures[:20])
