"""The plugin skeleton, config parsing and result building: in-process, no root."""
from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from podnet.cni import skel
from podnet.cni.config import make_netconf, parse_ipam, parse_netconf, valid_attachments
from podnet.cni.errors import CniError
from podnet.cni.result import convert, ipam_result

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/var/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def call(env, conf, handler=lambda a: {"ok": a.command}):
    out, err = io.StringIO(), io.StringIO()
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    rc = skel.run({v: handler for v in skel.VERBS}, env, stdin, out, err)
    return rc, (json.loads(out.getvalue()) if out.getvalue() else None)


def conf(**kw):
    c = make_netconf("sqlite:///tmp/x.db", "n1", False)
    c.update(kw)
    return c


@pytest.mark.parametrize("env,stdin,code,needle", [
    ({**ENV, "CNI_COMMAND": ""}, conf(), 4, "CNI_COMMAND"),
    ({**ENV, "CNI_COMMAND": "FROB"}, conf(), 4, "unknown CNI_COMMAND"),
    ({k: v for k, v in ENV.items() if k != "CNI_NETNS"}, conf(), 4, "CNI_NETNS"),
    ({k: v for k, v in ENV.items() if k != "CNI_CONTAINERID"}, conf(), 4, "CNI_CONTAINERID"),
    ({**ENV, "CNI_CONTAINERID": "-bad"}, conf(), 4, "invalid CNI_CONTAINERID"),
    ({**ENV, "CNI_IFNAME": "a" * 16}, conf(), 4, "invalid CNI_IFNAME"),
    ({**ENV, "CNI_IFNAME": "a:b"}, conf(), 4, "invalid CNI_IFNAME"),
    (ENV, b"{not json", 6, "unmarshalling"),
    (ENV, b"[1]", 6, "JSON object"),
    (ENV, b"[" * 100_000, 6, "unmarshalling"),  # was 999, internal error: RecursionError
    (ENV, b"\xff\xfe{", 6, "unmarshalling"),
    (ENV, conf(cniVersion="0.3.1"), 1, "incompatible"),
    (ENV, conf(cniVersion="9.9.9"), 1, "incompatible"),
    (ENV, conf(cniVersion="one"), 6, "cniVersion"),
    (ENV, conf(name=""), 7, "missing network name"),
    ({**ENV, "CNI_COMMAND": "STATUS"}, conf(cniVersion="1.0.0"), 1, "STATUS needs"),
])
def test_errors(env, stdin, code, needle):
    rc, doc = call(env, stdin)
    assert rc == 1 and doc["code"] == code and needle in doc["msg"], doc
    assert set(doc) <= {"cniVersion", "code", "msg", "details"}


def test_success_and_del_without_netns():
    assert call(ENV, conf()) == (0, {"ok": "ADD"})
    env = {k: v for k, v in ENV.items() if k != "CNI_NETNS"}
    assert call({**env, "CNI_COMMAND": "DEL"}, conf()) == (0, {"ok": "DEL"})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda n, c: c * n, st.integers(1, 50_000), st.sampled_from([b"[", b"{\"a\":"])),
       st.sampled_from(list(skel.VERBS)))
def test_any_stdin_is_a_protocol_answer_never_an_internal_error(stdin, verb):
    """The CNI's stdin comes from outside: whatever the bytes, the answer is a success or a
    CNI error of the protocol's own codes, never 999 (kept for podnet's bugs)."""
    rc, doc = call({**ENV, "CNI_COMMAND": verb}, stdin)
    if rc:
        assert doc["code"] != 999, doc


def test_version_verb_needs_nothing_else():
    rc, doc = call({"CNI_COMMAND": "VERSION"}, {"cniVersion": "0.2.0"})
    assert rc == 0 and doc == {"cniVersion": "0.2.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}


def test_bug_becomes_internal_error_not_a_traceback_on_stdout():
    def boom(a):
        raise KeyError("x")
    rc, doc = call(ENV, conf(), boom)
    assert rc == 1 and doc["code"] == 999 and "KeyError" in doc["msg"]


def test_netconf_validation():
    assert parse_netconf(conf(mtu=9000)).mtu == 9000
    for bad, code, key in [({"mtu": 10}, 7, "mtu"), ({"mtu": "big"}, 7, "mtu"),
                           ({"frobnicate": 1}, 2, "frobnicate"),
                           ({"ipam": {}}, 7, "ipam"), ({"ipam": {"type": "../x"}}, 7, "ipam.type")]:
        with pytest.raises(CniError) as e:
            parse_netconf(conf(**bad))
        assert e.value.code == code and key in e.value.msg


def test_ipam_config():
    ic = parse_ipam(make_netconf("sqlite:///x.db", "n7", True), {})
    assert ic.node == "n7" and ic.assign == {4: "true", 6: "true"} and ic.datastore == "sqlite:///x.db"
    c = conf()
    c["ipam"] = {"type": "podnet-ipam", "ipv4_pools": ["10.0.0.0/24"]}
    c["datastore"] = "etcd://127.0.0.1:2379"
    ic = parse_ipam(c, {"NODENAME": "envnode"})
    assert ic.datastore.startswith("etcd") and ic.node == "envnode" and ic.pools[4] == ("10.0.0.0/24",)
    assert ic.assign == {4: "auto", 6: "auto"}
    for bad, key in [({"assign_ipv4": "maybe"}, "assign_ipv4"), ({"ipv4_pools": "p"}, "ipv4_pools"),
                     ({"release_empty_blocks_after": -1}, "release_empty_blocks_after"),
                     ({"datastore": "mysql://x"}, "datastore"), ({"bogus": 1}, "bogus")]:
        c = conf()
        c["ipam"] = {**c["ipam"], **bad}
        with pytest.raises(CniError) as e:
            parse_ipam(c, {})
        assert key in e.value.msg


def test_valid_attachments_accepts_both_keys():
    c = {"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
         "cni.dev/attachments": [{"containerID": "b", "ifname": "eth1"}]}
    assert valid_attachments(c) == {("a", "eth0"), ("b", "eth1")}
    assert valid_attachments({}) == set()


def test_result_versions():
    r = ipam_result("0.4.0", ["10.0.0.1/32", "fd00::1/128"], [])
    assert [i["version"] for i in r["ips"]] == ["4", "6"] and r["cniVersion"] == "0.4.0"
    r = convert(r, "1.1.0")
    assert all("version" not in i for i in r["ips"]) and "interfaces" not in r


def _requested(extra=None, cni_args=""):
    c = {**make_netconf("sqlite:///x.db", "n7", True), **(extra or {})}
    return {v: str(a) for v, a in parse_ipam(c, {"CNI_ARGS": cni_args}).requested.items()}


def test_requested_ips_from_each_place_a_runtime_puts_them():
    assert _requested() == {}
    assert _requested(cni_args="IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.244.1.5") == {4: "10.244.1.5"}
    assert _requested(cni_args="IP=10.244.1.5,fd00:10:244::5") == {4: "10.244.1.5", 6: "fd00:10:244::5"}
    assert _requested({"args": {"cni": {"ips": ["fd00:10:244::7"]}}}) == {6: "fd00:10:244::7"}
    assert _requested({"runtimeConfig": {"ips": ["10.244.1.9/24"]}}) == {4: "10.244.1.9"}
    # the same address twice is one request
    assert _requested({"runtimeConfig": {"ips": ["10.244.1.9/32"]}}, "IP=10.244.1.9") == {4: "10.244.1.9"}


@pytest.mark.parametrize("extra, cni_args, code, needle", [
    ({}, "IP=10.244.1.x", 4, "invalid CNI_ARGS IP='10.244.1.x'"),
    ({}, "IP", 4, "invalid CNI_ARGS pair 'IP'"),
    ({"args": {"cni": {"ips": "10.0.0.1"}}}, "", 7, "args.cni.ips"),
    ({"runtimeConfig": {"ips": ["10.0.0.1", "bogus"]}}, "", 7, "runtimeConfig.ips[1]='bogus'"),
    ({"runtimeConfig": {"ips": ["10.0.0.1"]}}, "IP=10.0.0.2", 7, "a second IPv4 address: 10.0.0.2 is already "
                                                               "requested by CNI_ARGS IP"),
])
def test_bad_requested_ips_name_where_they_came_from(extra, cni_args, code, needle):
    with pytest.raises(CniError) as e:
        _requested(extra, cni_args)
    assert e.value.code == code and needle in str(e.value)


def test_a_requested_family_the_network_does_not_assign():
    c = make_netconf("sqlite:///x.db", "n7", False)  # assign_ipv6 false
    with pytest.raises(CniError, match="fd00::5 was requested, but this network assigns no IPv6") as e:
        parse_ipam(c, {"CNI_ARGS": "IP=fd00::5"})
    assert e.value.code == 7


@pytest.mark.parametrize("extra, code, needle", [
    ({"ipMasq": "yes"}, 7, "ipMasq='yes'"),
    ({"ipMasq": True}, 2, "ipMasq=true"),
    ({"dns": {"nameservers": "10.96.0.10"}}, 7, "dns.nameservers='10.96.0.10'"),
    ({"dns": {"domain": ["a"]}}, 7, "dns.domain"),
    ({"dns": {"servers": ["10.96.0.10"]}}, 7, "dns.servers"),
    ({"cni.devx/foo": 1}, 2, "unsupported field cni.devx/foo"),
])
def test_netconf_fields_a_runtime_would_choke_on_are_refused(extra, code, needle):
    with pytest.raises(CniError) as e:
        parse_netconf({**make_netconf("sqlite:///x.db", "n1", False), **extra})
    assert e.value.code == code and needle in e.value.msg


def test_reserved_keys_and_well_formed_fields_pass():
    ok = {**make_netconf("sqlite:///x.db", "n1", False), "cni.dev/some-future-key": {"a": 1},
          "ipMasq": False, "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"],
                                    "options": ["ndots:5"], "domain": "cluster.local"}}
    assert parse_netconf(ok).dns["domain"] == "cluster.local"
