"""The DNS bench's data: Service names and addresses, and the query mix pods send. Pure.

Services `svc<i>` in namespace `bench`; every second one dual-stack (an A and an AAAA
record), the others IPv4 only (an AAAA query gets NOERROR without answers). Clients are
pods with the kubelet's resolv.conf, `options ndots:5` and the search list of their own
namespace; glibc sends A and AAAA for every candidate name and walks the search list while
the name has fewer than 5 dots, so one lookup becomes several queries:

- `svc<i>` from a pod in `bench`: `svc<i>.bench.svc.cluster.local` (found at once);
- `svc<i>.bench` from a pod in `app`: `svc<i>.bench.app.svc.cluster.local` (NXDOMAIN),
  then `svc<i>.bench.svc.cluster.local`;
- `svc<i>.bench.svc.cluster.local` (4 dots, no trailing dot) from a pod in `app`: the
  three search domains first (three NXDOMAINs), then the name itself.

Each name is looked up in one of the three forms (i mod 3), A and AAAA for every candidate;
the lookups are shuffled with a fixed seed. Names outside the cluster (forwarded upstream)
are left out: both servers would then measure their upstream.
"""
from __future__ import annotations

import random

ZONE = "cluster.local"
SEARCH_APP = ("app.svc.cluster.local", "svc.cluster.local", "cluster.local")
READY_NAME = f"ready.bench.svc.{ZONE}"  # answered by both, never in the mix
READY_IP = "10.95.255.254"  # outside every Service address below


def svc_ip4(i: int) -> str:
    """10.96.16.1 on, 250 a /24 (the third octet carries into the second past 59,999)."""
    third = 16 + i // 250
    return f"10.{96 + third // 256}.{third % 256}.{1 + i % 250}"


def svc_ip6(i: int) -> str | None:
    return f"fd00:10:96::{i + 1:x}" if i % 2 == 0 else None


def fqdn(i: int) -> str:
    return f"svc{i}.bench.svc.{ZONE}"


def candidates(i: int) -> list[str]:
    """The names glibc asks for, in order, to resolve Service i in form i mod 3."""
    form = i % 3
    if form == 0:
        return [fqdn(i)]
    if form == 1:
        return [f"svc{i}.bench.{SEARCH_APP[0]}", fqdn(i)]
    return [f"{fqdn(i)}.{d}" for d in SEARCH_APP] + [fqdn(i)]


def query_lines(n: int, seed: int = 7) -> list[str]:
    """dnsperf's input: `name type` lines, each lookup's queries kept in their order."""
    lookups = [[line for name in candidates(i) for line in (f"{name} A", f"{name} AAAA")] for i in range(n)]
    random.Random(seed).shuffle(lookups)
    return [line for lookup in lookups for line in lookup]


def hosts_lines(n: int) -> list[str]:
    """dnsmasq's addn-hosts file for the same Services."""
    out = [f"{READY_IP} {READY_NAME}"]
    for i in range(n):
        out.append(f"{svc_ip4(i)} {fqdn(i)}")
        if (ip6 := svc_ip6(i)) is not None:
            out.append(f"{ip6} {fqdn(i)}")
    return out


def service(i: int | None) -> dict:
    """The Service object podnet dns serves for i (None: the readiness probe's)."""
    name, ips = ("ready", [READY_IP]) if i is None else (f"svc{i}", [svc_ip4(i)] + ([svc_ip6(i)] if svc_ip6(i) else []))
    families = ["IPv6" if ":" in ip else "IPv4" for ip in ips]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "bench"},
            "spec": {"clusterIP": ips[0], "clusterIPs": ips, "ipFamilies": families,
                     "ipFamilyPolicy": "PreferDualStack" if len(ips) > 1 else "SingleStack",
                     "ports": [{"port": 80, "name": "http"}]}}


def expected_rcodes(n: int) -> dict[str, int]:
    """How many NOERROR and NXDOMAIN answers one pass over the mix should get."""
    nx = sum(2 * (len(candidates(i)) - 1) for i in range(n))
    return {"NOERROR": 2 * n, "NXDOMAIN": nx}
