"""`podnet dns` on the real kernel, asked by real clients (dig, glibc's resolver).

Two network namespaces of our own (unique per run): `pnt-dnssrv-<id>` runs `podnet dns` (the real command, on a
real SQLite store) and the clients; `pnt-dnsup-<id>` runs dnsmasq, authoritative for
`example.test`, as the upstream, over a veth pair in 203.0.113.0/24 (the lab's outside
world range). glibc reads /etc/netns/<srv netns>/resolv.conf, which `ip netns exec`
bind-mounts over /etc/resolv.conf, as the lab does for pods.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from netnames import unique_netns

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "dns"))
from dns_cluster import cluster, endpoint_slice, ep, service  # noqa: E402

pytestmark = pytest.mark.root

NS_SRV, NS_UP = unique_netns("dnssrv"), unique_netns("dnsup")
SRV_IP, UP_IP = "203.0.113.1", "203.0.113.53"
UP_TTL = 4  # dnsmasq's TTL for example.test: short, so the cache expiry is observable
VENV = Path(__file__).resolve().parents[3] / ".venv" / "bin"
RESOLV_DIR = Path("/etc/netns") / NS_SRV
Z = "cluster.local"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


def ns_run(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", ns, *argv, check=check)


class Upstream:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_UP, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", f"--listen-address={UP_IP}", "--bind-interfaces", "--port=53",
             "--user=root", "--pid-file=", "--auth-zone=example.test",
             "--auth-server=ns.example.test,veth-up", "--host-record=www.example.test,203.0.113.80",
             f"--auth-ttl={UP_TTL}", f"--auth-soa=1,hostmaster.example.test,1200,180,1209600,{UP_TTL}"]
            # big.example.test: 90 addresses, more than fits in a 1232-byte UDP answer
            + [f"--host-record=big.example.test,198.51.100.{i}" for i in range(1, 91)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: "203.0.113.80" in ns_run(NS_UP, "dig", f"@{UP_IP}", "+short", "+time=1",
                                                    "+tries=1", "www.example.test", check=False).stdout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def wait_for(cond, timeout: float = 10.0, step: float = 0.05) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from podnet.datastore.sqlite import SqliteDatastore
    tmp = tmp_path_factory.mktemp("dns")
    url = f"sqlite://{tmp / 'store.db'}"
    procs: list[subprocess.Popen] = []
    upstream = Upstream()
    store = SqliteDatastore(url)
    try:
        for ns in (NS_SRV, NS_UP):
            run("ip", "netns", "add", ns)
            ns_run(ns, "ip", "link", "set", "lo", "up")
        run("ip", "-n", NS_SRV, "link", "add", "veth-srv", "type", "veth", "peer", "name", "veth-up",
            "netns", NS_UP)
        ns_run(NS_SRV, "ip", "addr", "add", f"{SRV_IP}/24", "dev", "veth-srv")
        ns_run(NS_UP, "ip", "addr", "add", f"{UP_IP}/24", "dev", "veth-up")
        ns_run(NS_SRV, "ip", "link", "set", "veth-srv", "up")
        ns_run(NS_UP, "ip", "link", "set", "veth-up", "up")
        objs = [o for kind in cluster().objects.values() for o in kind.values()]
        eps = [ep(f"10.244.4.{i}") for i in range(1, 60)]
        objs += [service("default", "big", clusterIP="None"), endpoint_slice("default", "big", eps, []),
                 # the cluster DNS Service: its addresses are the zone's NS glue
                 service("kube-system", "kube-dns", clusterIP="10.96.0.10",
                         clusterIPs=["10.96.0.10", "fd00:10:96::a"], ipFamilies=["IPv4", "IPv6"])]
        for o in objs:
            store.create(o)
        upstream.start()
        RESOLV_DIR.mkdir(parents=True, exist_ok=True)
        (RESOLV_DIR / "resolv.conf").write_text(
            f"nameserver 127.0.0.1\nsearch default.svc.{Z} svc.{Z} {Z}\noptions ndots:5\n")
        log = open(tmp / "dns.log", "w")
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NS_SRV, str(VENV / "podnet"), "--datastore", url, "dns",
             "--listen", "0.0.0.0", "--listen", "::", "--upstream", UP_IP, "--ttl", "30"],
            stdout=log, stderr=log))
        wait_for(lambda: "10.96.0.20" in dig("web.default.svc.cluster.local", raw=True))
        yield {"store": store, "upstream": upstream, "proc": procs[0], "log": tmp / "dns.log"}
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(5)
        upstream.stop()
        store.close()
        for ns in (NS_SRV, NS_UP):
            run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(RESOLV_DIR, ignore_errors=True)


def dig(*args: str, raw: bool = False, server: str = "127.0.0.1") -> dict | str:
    cp = ns_run(NS_SRV, "dig", f"@{server}", "+yaml", "+time=2", "+tries=1", *args, check=False)
    if raw:
        return cp.stdout
    docs = yaml.safe_load(cp.stdout)
    return docs[-1]["message"]["response_message_data"]


def records(msg: dict, section: str = "ANSWER_SECTION") -> list[tuple[str, str, str]]:
    """(owner, type, rdata) of each RR; TTLs aside."""
    out = []
    for line in msg.get(section) or []:
        owner, _ttl, _cls, rtype, rdata = line.split(None, 4)
        out.append((owner, rtype, rdata))
    return sorted(out)


def rdatas(msg: dict, rtype: str | None = None) -> list[str]:
    return sorted(r for _o, t, r in records(msg) if rtype is None or t == rtype)


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
@pytest.mark.parametrize("qname,qtype,status,expected", [
    (f"web.default.svc.{Z}", "A", "NOERROR", ["10.96.0.20"]),
    (f"web.default.svc.{Z}", "AAAA", "NOERROR", ["fd00:10:96::20"]),
    (f"_http._tcp.web.default.svc.{Z}", "SRV", "NOERROR", [f"0 100 80 web.default.svc.{Z}."]),
    (f"db.default.svc.{Z}", "A", "NOERROR", ["10.244.1.5", "10.244.2.6"]),
    (f"db-0.db.default.svc.{Z}", "AAAA", "NOERROR", ["fd00:10:244::5"]),
    (f"dns-version.{Z}", "TXT", "NOERROR", ['"1.1.0"']),
    (f"10-244-9-9.default.pod.{Z}", "A", "NOERROR", ["10.244.9.9"]),
    ("20.0.96.10.in-addr.arpa", "PTR", "NOERROR", [f"web.default.svc.{Z}."]),
    (f"inner.default.svc.{Z}", "A", "NOERROR", ["10.96.0.20", f"web.default.svc.{Z}."]),
    (f"v4only.default.svc.{Z}", "AAAA", "NOERROR", []),
    (f"web.default.svc.{Z}", "MX", "NOERROR", []),
    (f"nope.default.svc.{Z}", "A", "NXDOMAIN", []),
    (f"empty.default.svc.{Z}", "A", "NXDOMAIN", []),
    (f"nons.svc.{Z}", "A", "NXDOMAIN", []),
    (f"default.svc.{Z}", "A", "NOERROR", []),
])
def test_dig_records(lab, transport, qname, qtype, status, expected):
    m = dig(transport, qname, qtype)
    assert m["status"] == status
    assert "aa" in m["flags"].split()
    assert rdatas(m) == sorted(expected)
    if not expected:
        assert [t for _o, t, _r in records(m, "AUTHORITY_SECTION")] == ["SOA"]


def test_ipv6_ptr_and_listen(lab):
    m = dig("-x", "fd00:10:96::20", server="::1")
    assert rdatas(m) == [f"web.default.svc.{Z}."]


def test_srv_additional_section(lab):
    m = dig(f"_pg._tcp.db.default.svc.{Z}", "SRV")
    assert rdatas(m) == [f"0 50 15432 db-0.db.default.svc.{Z}.", f"0 50 15432 db-1.db.default.svc.{Z}."]
    assert sorted(r for _o, _t, r in records(m, "ADDITIONAL_SECTION")) == ["10.244.1.5", "10.244.2.6",
                                                                          "fd00:10:244::5"]


@pytest.mark.parametrize("qtype,glue", [
    ("NS", [("A", "10.96.0.10"), ("AAAA", "fd00:10:96::a")]),
    ("SOA", []),  # CoreDNS: only SRV, MX and NS answers carry Additional records
])
def test_apex_glue_only_with_ns(lab, qtype, glue):
    m = dig(Z, qtype)
    assert m["status"] == "NOERROR" and [t for _o, t, _r in records(m)] == [qtype]
    assert [(t, r) for _o, t, r in records(m, "ADDITIONAL_SECTION")] == glue


def test_question_case_is_echoed(lab):
    m = dig("WeB.DeFaulT.svc.CLUSTER.local", "A")
    assert m["QUESTION_SECTION"] == ["WeB.DeFaulT.svc.CLUSTER.local. IN A"]
    assert rdatas(m) == ["10.96.0.20"]


def test_truncation_over_udp_and_full_answer_over_tcp(lab):
    name = f"big.default.svc.{Z}"
    udp = dig("+ignore", "+noedns", "+notcp", name)
    assert "tc" in udp["flags"].split() and not udp.get("ANSWER_SECTION")
    assert len(rdatas(dig("+noedns", name))) == 59   # dig retries over TCP by itself
    assert len(rdatas(dig("+tcp", name))) == 59
    assert len(rdatas(dig("+bufsize=4096", "+notcp", "+ignore", name))) == 59


def test_glibc_resolver_through_search_path(lab):
    hosts = ns_run(NS_SRV, "getent", "hosts", "web").stdout.split()
    assert hosts[0] in ("fd00:10:96::20", "10.96.0.20") and hosts[1] == f"web.default.svc.{Z}"
    assert ns_run(NS_SRV, "getent", "hosts", "web.other").stdout.split()[:2] == ["10.96.0.30",
                                                                               f"web.other.svc.{Z}"]
    ahosts = ns_run(NS_SRV, "getent", "ahosts", "web").stdout
    assert "10.96.0.20" in ahosts and "fd00:10:96::20" in ahosts
    assert ns_run(NS_SRV, "getent", "ahostsv4", "db").stdout.split().count("STREAM") == 2
    assert ns_run(NS_SRV, "getent", "hosts", "nope", check=False).returncode == 2
    assert ns_run(NS_SRV, "getent", "hosts", "www.example.test").stdout.split()[0] == "203.0.113.80"


def test_forwarding_external_name_and_cache(lab):
    m = dig("www.example.test", "A")
    assert rdatas(m) == ["203.0.113.80"] and "aa" not in m["flags"].split()
    ext = dig(f"ext.default.svc.{Z}", "A")
    assert ext["status"] == "NOERROR" and "aa" in ext["flags"].split()
    assert rdatas(ext) == ["203.0.113.80", "www.example.test."]
    neg = dig("nope.example.test", "A")
    assert neg["status"] == "NXDOMAIN" and records(neg, "AUTHORITY_SECTION")[0][1] == "SOA"
    lab["upstream"].stop()
    try:
        # The upstream is gone: positive and negative answers now come from the cache...
        assert rdatas(dig("www.example.test", "A")) == ["203.0.113.80"]
        assert dig("nope.example.test", "A")["status"] == "NXDOMAIN"
        # ...until their TTL (UP_TTL) runs out.
        time.sleep(UP_TTL + 0.5)
        assert dig("www.example.test", "A")["status"] == "SERVFAIL"
    finally:
        lab["upstream"].start()
    assert rdatas(dig("www.example.test", "A")) == ["203.0.113.80"]


def test_forwarding_retries_over_tcp_when_upstream_truncates(lab):
    m = dig("+tcp", "big.example.test", "A")
    assert m["status"] == "NOERROR" and len(rdatas(m)) == 90
    udp = dig("+notcp", "+ignore", "+noedns", "big.example.test", "A")
    assert "tc" in udp["flags"].split()


def test_store_changes_are_visible_within_a_second(lab):
    store = lab["store"]
    name = f"fresh.default.svc.{Z}"
    assert dig(name)["status"] == "NXDOMAIN"
    store.create(service("default", "fresh", clusterIP="10.96.0.77"))
    # The requirement: changes visible within 1 s.
    wait_for(lambda: rdatas(dig("+time=1", name)) == ["10.96.0.77"], timeout=1.0, step=0.02)
    store.delete("Service", "default", "fresh")
    wait_for(lambda: dig(name)["status"] == "NXDOMAIN", timeout=1.0, step=0.02)
    # headless: a new ready endpoint appears in the answer
    sl = store.get("EndpointSlice", "default", "db-a")
    eps = sl.raw["endpoints"] + [ep("10.244.5.5")]
    store.update(sl.__class__({**sl.raw, "endpoints": eps}))
    wait_for(lambda: "10.244.5.5" in rdatas(dig(f"db.default.svc.{Z}")), timeout=1.0, step=0.02)


def test_garbage_never_kills_the_server(lab):
    code = (
        "import socket,os,struct\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.05)\n"
        "pk=[b'', b'\\x00', os.urandom(11), b'\\x12\\x34'+b'\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'+b'\\xc0\\x0c\\x00\\x01\\x00\\x01',"
        " b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00'+b'\\x3fa'*9]\n"
        "pk += [os.urandom(n) for n in range(12, 600, 7)]\n"
        "for p in pk:\n"
        "    s.sendto(p, ('127.0.0.1', 53))\n"
        "    try: s.recv(4096)\n"
        "    except OSError: pass\n"
        "t=socket.create_connection(('127.0.0.1',53)); t.sendall(struct.pack('!H',300)+os.urandom(100)); t.close()\n"
    )
    ns_run(NS_SRV, sys.executable, "-c", code)
    assert lab["proc"].poll() is None
    assert rdatas(dig(f"web.default.svc.{Z}")) == ["10.96.0.20"]
    assert "Traceback" not in lab["log"].read_text()


def test_refuses_other_classes_and_transfers(lab):
    assert dig("-c", "CH", "version.bind", "TXT")["status"] == "REFUSED"
    assert dig("+tcp", Z, "AXFR", raw=True).count("Transfer failed") == 1


# Holds TCP connections open from several client addresses (127.0.0.2, ...: all of 127/8 is
# local), then prints which of them the server has closed.
HOLD_TCP = """
import json, socket, sys, time
clients, each = int(sys.argv[1]), int(sys.argv[2])
conns = []
for c in range(clients):
    for _ in range(each):
        s = socket.socket(); s.bind((f"127.0.0.{2 + c}", 0)); s.connect(("127.0.0.1", 53))
        conns.append(s)
time.sleep(0.5)
print(json.dumps({"open": len(conns)}), flush=True)
sys.stdin.readline()
closed = 0
for s in conns:
    s.settimeout(0.2)
    try:
        closed += s.recv(1) == b""
    except TimeoutError:
        pass
    except OSError:
        closed += 1
print(json.dumps({"closed": closed}), flush=True)
"""


def _hold_tcp(clients: int, each: int) -> subprocess.Popen:
    p = subprocess.Popen(["ip", "netns", "exec", NS_SRV, sys.executable, "-c", HOLD_TCP, str(clients), str(each)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert '"open"' in p.stdout.readline()
    return p


def _closed(p: subprocess.Popen) -> int:
    import json
    out, _ = p.communicate("go\n", timeout=60)
    return json.loads(out)["closed"]


def test_idle_tcp_clients_cannot_deny_tcp_to_others(lab):
    """137 idle connections used to take every TCP slot for 10 s at a time, so a real query
    over TCP was cut off: now the longest idle ones make room (RFC 7766 §6.2.3)."""
    holder = _hold_tcp(clients=9, each=16)   # 144 idle connections, more than the 128 slots
    try:
        for _ in range(3):
            assert rdatas(dig("+tcp", f"web.default.svc.{Z}")) == ["10.96.0.20"]
    finally:
        closed = _closed(holder)
    assert closed >= 144 - 128 + 3  # the evicted ones, each seen closed by its client


def test_one_client_holds_at_most_its_share_of_tcp(lab):
    holder = _hold_tcp(clients=1, each=40)
    assert _closed(holder) == 40 - 16


def test_a_slow_query_over_tcp_is_cut_off(lab):
    """A client that sends a query's length and only part of the query (a slow loris) loses
    the connection after 2 s, not after the 10 s idle timeout that restarted on each byte."""
    code = ("import socket,struct,time\n"
            "s=socket.create_connection(('127.0.0.1',53)); s.sendall(struct.pack('!H',40)+b'x')\n"
            "t=time.monotonic(); s.settimeout(10)\n"
            "try:\n    r=s.recv(1)\nexcept OSError:\n    r=b'err'\n"
            "print(r, round(time.monotonic()-t, 1))\n")
    out = ns_run(NS_SRV, sys.executable, "-c", code).stdout.split()
    assert out[0] == "b''" and float(out[1]) < 4, out
