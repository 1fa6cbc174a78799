"""Cluster DNS in a lab, as pods see it: real `dig` and the glibc resolver inside pods,
through the kube-dns Service, with the resolv.conf the lab kubelet writes.

One dual-stack lab for the module; tests run in file order (the last one scales).
"""
from __future__ import annotations

import ipaddress
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: podnet/serve, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: alpha, labels: {app: web}}
spec:
  hostname: alpha
  subdomain: hl
  containers:
  - {name: web, image: podnet/serve, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ipFamilyPolicy: PreferDualStack
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: v4only}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: hl}
spec:
  clusterIP: None
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: www.example.test
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec:
  selector: {app: nothing-here}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - {name: c, image: podnet/serve}
"""

ZONE = "cluster.local"


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("--nodes", "2", "--dual-stack")
    lab.podnet("apply", "-f", "-", input=MANIFESTS)
    lab.wait_pods(4)
    lab.wait_pods(2, namespace="kube-system")
    return lab


def in_client(lab, *cmd: str, check: bool = True) -> str:
    cp = lab.podnet("exec", "client", "--", *cmd, check=False)
    if check:
        assert cp.returncode == 0, f"{' '.join(cmd)}: exit {cp.returncode}\n{cp.stdout}{cp.stderr}"
    return cp.stdout


def dig(lab, *args: str) -> list[str]:
    return [line for line in in_client(lab, "dig", "+short", "+time=2", "+tries=2", *args).splitlines() if line]


def dig_status(lab, *args: str) -> tuple[str, str]:
    """(rcode, the full dig output) for a query."""
    out = in_client(lab, "dig", "+time=2", "+tries=2", *args)
    status = out.split("status: ", 1)[1].split(",", 1)[0] if "status: " in out else "?"
    return status, out


def svc(lab, name: str, ns: str = "default"):
    s = lab.store()
    try:
        return s.get("Service", ns, name)
    finally:
        s.close()


def web_ips(lab, family: int) -> set[str]:
    return {ip for p in lab.pods() if p.labels.get("app") == "web" and p.ready
            for ip in p.pod_ips if ipaddress.ip_address(ip).version == family}


def test_pods_get_the_kubelet_resolv_conf(lab):
    text = in_client(lab, "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in text and "nameserver fd00:10:96::a" in text
    assert f"search default.svc.{ZONE} svc.{ZONE} {ZONE}" in text and "options ndots:5" in text


def test_clusterip_a_aaaa_srv_and_ptr(lab):
    ips = svc(lab, "web").cluster_ips
    v4 = [i for i in ips if ":" not in i]
    v6 = [i for i in ips if ":" in i]
    assert v4 and v6, ips
    fq = f"web.default.svc.{ZONE}"
    assert dig(lab, fq) == v4
    assert dig(lab, "AAAA", fq) == v6
    assert dig(lab, "SRV", f"_http._tcp.{fq}") == [f"0 100 80 {fq}."]
    assert dig(lab, "-x", v4[0]) == [f"{fq}."]
    assert dig(lab, "-x", v6[0]) == [f"{fq}."]
    assert dig(lab, "TXT", f"dns-version.{ZONE}") == ['"1.1.0"']
    assert dig(lab, "WEB.Default.SVC.cluster.LOCAL") == v4  # names match without regard to case


def test_negative_answers_are_exact(lab):
    status, out = dig_status(lab, f"nosuch.default.svc.{ZONE}")
    assert status == "NXDOMAIN" and "SOA" in out, out
    status, out = dig_status(lab, "AAAA", f"v4only.default.svc.{ZONE}")  # exists, no IPv6
    assert status == "NOERROR" and "ANSWER: 0" in out and "SOA" in out, out
    status, out = dig_status(lab, f"web.nosuchns.svc.{ZONE}")
    assert status == "NXDOMAIN", out


def test_headless_hostname_subdomain_and_pod_records(lab):
    fq = f"hl.default.svc.{ZONE}"
    assert set(dig(lab, fq)) == web_ips(lab, 4)
    assert set(dig(lab, "AAAA", fq)) == web_ips(lab, 6)
    alpha = next(p for p in lab.pods() if p.name == "alpha")
    a4 = next(ip for ip in alpha.pod_ips if ":" not in ip)
    assert dig(lab, f"alpha.{fq}") == [a4]
    srv = dig(lab, "SRV", f"_http._tcp.{fq}")
    # one SRV per ready endpoint of each family's slice, each naming its own host: pods
    # without a hostname by their dashed IP (once per family), alpha by its hostname (once)
    n = len(web_ips(lab, 4))
    assert len(srv) == 2 * (n - 1) + 1 and len(set(srv)) == len(srv), srv
    assert all(r.split()[2] == "8080" and r.endswith(f".{fq}.") for r in srv), srv
    assert f"alpha.{fq}." in [r.split()[3] for r in srv], srv
    assert dig(lab, f"{a4.replace('.', '-')}.default.pod.{ZONE}") == [a4]


def test_external_name_is_a_cname_followed_upstream(lab):
    answers = dig(lab, f"ext.default.svc.{ZONE}")
    assert answers[0] == "www.example.test." and "203.0.113.10" in answers, answers


def test_names_outside_the_cluster_are_forwarded(lab):
    assert dig(lab, "www.example.test") == ["203.0.113.10"]
    status, _ = dig_status(lab, "nosuch.example.test")
    assert status == "NXDOMAIN"


def test_glibc_resolver_uses_the_search_path(lab):
    web = set(svc(lab, "web").cluster_ips)
    short = in_client(lab, "getent", "hosts", "web").split()
    assert short[0] in web and short[1] == f"web.default.svc.{ZONE}"
    other = svc(lab, "web", "other").cluster_ips[0]
    assert in_client(lab, "getent", "hosts", "web.other").split()[0] == other
    ahosts = {line.split()[0] for line in in_client(lab, "getent", "ahosts", "web").splitlines()}
    assert ahosts == web  # A and AAAA in dual stack
    body = in_client(lab, "curl", "-s", "--max-time", "3", "http://web/")
    assert body.startswith("default/") and body.split()[0].split("/")[1] in {
        p.name for p in lab.pods() if p.labels.get("app") == "web"}


def test_scaling_changes_the_headless_answer_within_seconds(lab):
    lab.podnet("apply", "-f", "-", input=MANIFESTS.replace("replicas: 2", "replicas: 4"))
    lab.wait_pods(6)
    want = web_ips(lab, 4)
    assert len(want) == 5
    deadline = time.monotonic() + 5
    got: set[str] = set()
    while time.monotonic() < deadline:
        got = set(dig(lab, f"hl.default.svc.{ZONE}"))
        if got == want:
            break
        time.sleep(0.2)
    assert got == want


POLICY_PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: dnsp}
---
apiVersion: v1
kind: Pod
metadata: {name: custom, namespace: dnsp}
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers: [203.0.113.10]
    searches: [example.test]
    options: [{name: ndots, value: "2"}]
  containers: [{name: c, image: podnet/serve}]
---
apiVersion: v1
kind: Pod
metadata: {name: nodedns, namespace: dnsp}
spec:
  dnsPolicy: Default
  containers: [{name: c, image: podnet/serve}]
"""


def test_dns_policy_none_and_default_are_honoured(lab):
    lab.podnet("apply", "-f", "-", input=POLICY_PODS)
    lab.wait_pods(2, namespace="dnsp")

    def run(pod: str, *cmd: str) -> str:
        cp = lab.podnet("exec", "-n", "dnsp", pod, "--", *cmd, check=False)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        return cp.stdout

    custom = run("custom", "cat", "/etc/resolv.conf")
    assert "nameserver 203.0.113.10" in custom and "10.96.0.10" not in custom, custom
    assert "search example.test" in custom and "options ndots:2" in custom, custom
    # the search path from dnsConfig, through the glibc resolver: `www` is www.example.test
    outside = {"203.0.113.10", "fd00:203:113::10"}  # the echo host has A and AAAA
    assert run("custom", "getent", "hosts", "www").split()[0] in outside
    node = run("nodedns", "cat", "/etc/resolv.conf")
    assert "10.96.0.10" not in node and "cluster.local" not in node, node  # the node's own resolver
    assert run("nodedns", "getent", "hosts", "www.example.test").split()[0] in outside
