"""bench/dns_mix.py at issue 22's size: 100,000 Service names get distinct, valid addresses
(the third octet carries into the second), the same ones as before below 60,000."""
from __future__ import annotations

import ipaddress

from bench_modules import load_bench

mix = load_bench("dns_mix")


def test_100k_names_get_distinct_valid_ipv4_addresses():
    ips = [mix.svc_ip4(i) for i in range(100_000)]
    assert len({ipaddress.IPv4Address(ip) for ip in ips}) == 100_000
    assert mix.READY_IP not in ips


def test_small_sizes_keep_their_addresses():
    assert [mix.svc_ip4(i) for i in (0, 249, 250, 9_999)] == ["10.96.16.1", "10.96.16.250", "10.96.17.1",
                                                              "10.96.55.250"]
    assert mix.svc_ip4(60_000) == "10.97.0.1"


def test_hosts_file_and_expected_answers_cover_every_name():
    n = 3_000
    lines = mix.hosts_lines(n)
    assert len(lines) == 1 + n + (n + 1) // 2  # the probe, an A per name, an AAAA for every second
    assert mix.expected_rcodes(n)["NOERROR"] == 2 * n
