"""The services bench's reference renders kube-proxy's nftables layout: its chain names,
rules and elements for a service, as kube-proxy's own tests (pkg/proxy/nftables
proxier_test.go) expect them, and its stale-chain handling across partial syncs."""
from __future__ import annotations

from bench_modules import load_bench
from podnet.calc.services import EndpointAddr, ServicePortEntry


_kp = load_bench("kube_proxy_nft")
KubeProxyLayout, hash_and_truncate = _kp.KubeProxyLayout, _kp.hash_and_truncate

SVC1 = "service-ULMVA6XW-ns1/svc1/tcp/p80"
EP1 = "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def entry(*ips: str) -> ServicePortEntry:
    return ServicePortEntry(namespace="ns1", name="svc1", port_name="p80", protocol="TCP", family=4,
                            vip="172.30.0.41", port=80, node_port=0,
                            endpoints=tuple(EndpointAddr(ip, 80) for ip in ips), affinity_timeout=0)


def layout() -> KubeProxyLayout:
    return KubeProxyLayout("192.168.0.2", cluster_cidr="10.0.0.0/8")


def test_names_are_kube_proxys() -> None:
    assert hash_and_truncate("ns1/svc1/tcp/p80") == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert hash_and_truncate("ns2/svc2/tcp/p80") == "42NFTM6N-ns2/svc2/tcp/p80"


def test_a_service_renders_as_in_kube_proxys_tests() -> None:
    lines = layout().full([entry("10.180.0.1")]).splitlines()
    for want in [
        f"add rule ip kube-proxy {SVC1} ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8"
        " jump mark-for-masquerade",
        f"add rule ip kube-proxy {SVC1} numgen random mod 1 vmap {{ 0 : goto {EP1} }}",
        f"add rule ip kube-proxy {EP1} ip saddr 10.180.0.1 jump mark-for-masquerade",
        f"add rule ip kube-proxy {EP1} meta l4proto tcp dnat to 10.180.0.1:80",
        "add element ip kube-proxy cluster-ips { 172.30.0.41 }",
        f"add element ip kube-proxy service-ips {{ 172.30.0.41 . tcp . 80 : goto {SVC1} }}",
        "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
        "add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check",
        "add rule ip kube-proxy masquerading masquerade fully-random",
    ]:
        assert want in lines, want


def test_partial_sync_rewrites_one_service_and_retires_its_old_endpoint_chain() -> None:
    kp = layout()
    kp.full([entry("10.180.0.1", "10.180.0.2")])
    script = kp.partial([entry("10.180.0.1", "10.180.0.3")])
    assert "add element" not in script  # the service's ClusterIP and dispatch are unchanged
    assert f"flush chain ip kube-proxy {SVC1}" in script
    assert "numgen random mod 2 vmap" in script
    old = next(c for c in kp.existing if c.endswith("__10.180.0.2/80"))
    flush = kp.stale_after_list(sorted(kp.existing), now=100.0)
    assert flush == f"flush chain ip kube-proxy {old}\n"
    assert kp.delete_stale(now=100.5) == ""  # not a second old yet
    assert kp.delete_stale(now=101.5) == f"delete chain ip kube-proxy {old}\n"
    assert old not in kp.existing


def test_external_and_load_balancer_ips_render_as_in_kube_proxys_tests() -> None:
    from dataclasses import replace
    svc5 = replace(entry("10.180.0.3"), namespace="ns5", name="svc5", vip="172.30.0.45",
                   external_ips=("192.168.99.33",), lb_ips=("5.6.7.8",), source_ranges=("203.0.113.0/25",))
    lines = layout().full([svc5]).splitlines()
    ext, fw, svc = ("external-HVFWP5L3-ns5/svc5/tcp/p80", "firewall-HVFWP5L3-ns5/svc5/tcp/p80",
                    "service-HVFWP5L3-ns5/svc5/tcp/p80")
    for want in [
        f"add rule ip kube-proxy {ext} jump mark-for-masquerade",
        f"add rule ip kube-proxy {ext} goto {svc}",
        f"add rule ip kube-proxy {fw} ip saddr != {{ 203.0.113.0/25 }} drop",
        f"add element ip kube-proxy service-ips {{ 5.6.7.8 . tcp . 80 : goto {ext} }}",
        f"add element ip kube-proxy service-ips {{ 192.168.99.33 . tcp . 80 : goto {ext} }}",
        f"add element ip kube-proxy firewall-ips {{ 5.6.7.8 . tcp . 80 : goto {fw} }}",
    ]:
        assert want in lines, want
    # without endpoints kube-proxy writes no external dispatch (its no-endpoint maps answer)
    assert not any("external-" in x for x in layout().full([replace(svc5, endpoints=())]).splitlines())
