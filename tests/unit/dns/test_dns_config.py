"""The small pieces around the server: addresses, upstreams, the lab add-on, the command line."""
from __future__ import annotations

import pytest

from podnet.api.objects import from_dict
from podnet.dns.lab import lab_objects
from podnet.dns.server import _loops_back, parse_hostport, resolv_conf_upstreams


@pytest.mark.parametrize("text,expected", [
    ("10.96.0.10", ("10.96.0.10", 53)),
    ("10.96.0.10:5353", ("10.96.0.10", 5353)),
    ("fd00::a", ("fd00::a", 53)),
    ("[fd00::a]:5353", ("fd00::a", 5353)),
    ("::", ("::", 53)),
])
def test_parse_hostport(text, expected):
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["example.com", "10.0.0.1:99999", "[fd00::a", "1.2.3"])
def test_parse_hostport_rejects(text):
    with pytest.raises(ValueError):
        parse_hostport(text)


def test_upstreams_from_resolv_conf_and_loop_guard(tmp_path):
    f = tmp_path / "resolv.conf"
    f.write_text("# x\nnameserver 127.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\nsearch a\n"
                 "nameserver 203.0.113.53\n")
    ups = resolv_conf_upstreams(str(f))
    assert ups == [("127.0.0.1", 53), ("fe80::1", 53), ("203.0.113.53", 53)]
    assert _loops_back(("127.0.0.1", 53), [("0.0.0.0", 53)])
    assert _loops_back(("10.0.0.5", 53), [("10.0.0.5", 53)])
    assert not _loops_back(("127.0.0.1", 53), [("0.0.0.0", 5353)])
    assert not _loops_back(("203.0.113.53", 53), [("0.0.0.0", 53)])
    assert resolv_conf_upstreams(str(tmp_path / "missing")) == []


@pytest.mark.parametrize("dual", [False, True])
def test_lab_objects_are_kube_dns(dual):
    dep, svc = (from_dict(o) for o in lab_objects(dual))
    assert (dep.kind, dep.namespace, dep.replicas) == ("Deployment", "kube-system", 2)
    assert dep.selector.matches({"k8s-app": "kube-dns"})
    pod_spec = dep.template["spec"]
    assert pod_spec["dnsPolicy"] == "Default"
    c = pod_spec["containers"][0]
    assert c["command"] == ["podnet"] and c["args"][0] == "dns"
    assert ("::" in c["args"]) == dual
    assert (svc.name, svc.namespace) == ("kube-dns", "kube-system")
    assert svc.cluster_ips == (["10.96.0.10", "fd00:10:96::a"] if dual else ["10.96.0.10"])
    assert {(p.name, p.protocol, p.port) for p in svc.ports} == {("dns", "UDP", 53), ("dns-tcp", "TCP", 53)}
    try:
        from podnet.api.validate import validate_object
    except ImportError:
        return
    for o in (dep, svc):
        assert validate_object(o) == []


def test_cli_parses_and_rejects():
    from podnet.cli.errors import UserError
    from podnet.cli.main import build_parser
    from podnet.cli import dns as cli_dns
    args = build_parser().parse_args(["--datastore", "sqlite:///x.db", "dns", "--listen", "127.0.0.1:5300",
                                      "--listen", "::", "--upstream", "203.0.113.53", "--pods", "verified"])
    assert cli_dns._listen(args) == [("127.0.0.1", 5300), ("::", 53)]
    assert cli_dns._upstreams(args) == [("203.0.113.53", 53)]
    assert cli_dns._upstreams(build_parser().parse_args(["dns", "--upstream", "none"])) == []
    assert cli_dns._upstreams(build_parser().parse_args(["dns"])) is None
    with pytest.raises(UserError, match="--listen 'nope'"):
        cli_dns._listen(build_parser().parse_args(["dns", "--listen", "nope"]))
    with pytest.raises(UserError, match="--ttl 5000"):
        cli_dns.run(build_parser().parse_args(["--datastore", "sqlite:///x.db", "dns", "--ttl", "5000"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dns", "--pods", "sometimes"])


def test_cli_rejects_a_bad_zone(tmp_path):
    from podnet.cli.errors import UserError
    from podnet.cli.main import build_parser
    from podnet.cli import dns as cli_dns
    args = build_parser().parse_args(["--datastore", f"sqlite://{tmp_path / 's.db'}", "dns", "--zone", "a..b"])
    with pytest.raises(UserError, match="zone 'a..b'"):
        cli_dns.run(args)
