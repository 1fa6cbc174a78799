"""rtnl.py, the daemon's hand-packed netlink, against the real kernel: run in a node
namespace (never the test's own), checked with `ip`."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from cnilab import Lab

pytestmark = pytest.mark.root


@pytest.fixture
def nslab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def _run_in(lab: Lab, ns: str, code: str) -> dict:
    cp = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(code)],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def test_pair_made_in_two_namespaces_and_the_peer_index_read_from_the_host_end(nslab):
    pod = nslab.netns("pod")
    got = _run_in(nslab, nslab.node, f"""
        import json, os
        from podnet.dataplane.net import rtnl
        with rtnl.Rtnl() as nl:
            fd = os.open({nslab.path(pod)!r}, os.O_RDONLY)
            nl.request(*rtnl.veth_add("pnt0", "eth0", 1400, "ee:ee:ee:ee:ee:ee", "0a:00:00:00:00:01", fd, up=True))
            _, link = nl.batch([rtnl.set_alias("pnt0", "podnet:test"), rtnl.get_link("pnt0")])
            print(json.dumps({{"host": rtnl.link_index(link), "peer": rtnl.peer_index(link)}}))
        """)
    host = json.loads(nslab.sh(nslab.node, "ip", "-j", "link", "show", "pnt0").stdout)[0]
    peer = json.loads(nslab.sh(pod, "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert got == {"host": host["ifindex"], "peer": peer["ifindex"]}
    assert host["ifalias"] == "podnet:test" and "UP" in host["flags"] and host["mtu"] == 1400
    assert peer["address"] == "0a:00:00:00:00:01" and "UP" not in peer["flags"]


def test_a_batch_runs_every_request_and_names_the_one_that_failed(nslab):
    nslab.sh(nslab.node, "ip", "link", "add", "pnd0", "type", "veth", "peer", "name", "pnd1")
    nslab.sh(nslab.node, "ip", "link", "set", "pnd0", "up")
    got = _run_in(nslab, nslab.node, """
        import json
        from podnet.dataplane.net import rtnl
        with rtnl.Rtnl() as nl:
            i = nl.index("pnd0")
            reqs = [rtnl.route_add(i, "192.0.2.1", 32, scope=rtnl.RT_SCOPE_LINK),
                    rtnl.route_add(i, "192.0.2.1", 32, scope=rtnl.RT_SCOPE_LINK),  # exists
                    rtnl.route_add(i, "192.0.2.3", 32, scope=rtnl.RT_SCOPE_LINK)]
            try:
                nl.batch(reqs)
                print(json.dumps({"error": None}))
            except OSError as e:
                # the socket is still in step: the next request gets its own answer
                print(json.dumps({"error": [e.errno, str(e)], "after": nl.index("pnd0") == i}))
        """)
    assert got["error"][0] == 17 and "(request 2 of 3)" in got["error"][1] and got["after"]
    routes = nslab.sh(nslab.node, "ip", "-4", "route", "show", "dev", "pnd0").stdout
    assert "192.0.2.1" in routes and "192.0.2.3" in routes
