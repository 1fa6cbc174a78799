"""The pure parts of the CNI spec audit (tests/kernel/cni/test_cni_spec_gaps.py): chaining a
prevResult with our own result, and a delegated plugin that never answers."""
from __future__ import annotations

import pytest

from podnet.cni.errors import CniError
from podnet.cni.result import chain, convert

OWN = {"interfaces": [{"name": "pnabc", "mac": "ee:ee:ee:ee:ee:ee"},
                      {"name": "eth0", "mac": "0a:00:00:00:00:01", "sandbox": "/var/run/netns/p"}],
       "ips": [{"address": "10.244.0.5/32", "gateway": "169.254.1.1", "interface": 1}],
       "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}], "dns": {}}


def test_chain_without_prev_result_is_our_own():
    assert chain(None, OWN) is OWN


def test_chain_appends_ours_and_shifts_our_indexes():
    prev = {"cniVersion": "0.4.0", "interfaces": [{"name": "lo", "sandbox": "/var/run/netns/p"}],
            "ips": [{"version": "4", "address": "127.0.0.1/8", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}], "dns": {"search": ["x"]}}
    out = convert(chain(prev, OWN), "1.0.0")
    assert [i["name"] for i in out["interfaces"]] == ["lo", "pnabc", "eth0"]
    assert [(i["address"], i["interface"]) for i in out["ips"]] == [("127.0.0.1/8", 0), ("10.244.0.5/32", 2)]
    assert all("version" not in i for i in out["ips"]) and out["cniVersion"] == "1.0.0"
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]  # not twice
    assert out["dns"] == {"search": ["x"]}
    assert OWN["ips"][0]["interface"] == 1  # ours is not changed in place


@pytest.mark.parametrize("prev, needle", [
    ("x", "invalid prevResult 'x'"),
    ({"ips": {"address": "10.0.0.1/8"}}, "invalid prevResult.ips"),
    ({"routes": "default"}, "invalid prevResult.routes"),
])
def test_chain_names_a_bad_prev_result(prev, needle):
    with pytest.raises(CniError) as e:
        chain(prev, OWN)
    assert e.value.code == 7 and needle in e.value.msg


def _fake_ipam(tmp_path, body):
    d = tmp_path / "fakebin"
    d.mkdir(exist_ok=True)
    p = d / "fake-ipam"
    p.write_text("#!/bin/sh\ncat > /dev/null\n" + body)
    p.chmod(0o755)
    return str(d)


def test_a_plugin_that_does_not_answer_is_a_cni_error(tmp_path):
    """A hung delegated plugin must end in the protocol's error (11, try again later),
    not an unhandled TimeoutExpired; what it wrote to stderr is still passed on."""
    import io
    import json

    from podnet.cni import skel
    from podnet.cni.invoke import exec_plugin
    d = _fake_ipam(tmp_path, "echo 'fake-ipam: stuck' >&2\nexec sleep 30\n")

    def handler(a):
        return exec_plugin(f"{d}/fake-ipam", {"CNI_COMMAND": "ADD"}, b"{}", timeout=0.5)
    out, err = io.StringIO(), io.StringIO()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "eth0"}
    rc = skel.run({"ADD": handler}, env, json.dumps({"cniVersion": "1.1.0", "name": "n"}).encode(), out, err)
    doc = json.loads(out.getvalue())
    assert rc == 1 and doc["code"] == 11 and "fake-ipam did not answer within 0.5 s" in doc["msg"], doc
    assert "fake-ipam: stuck" in err.getvalue()
