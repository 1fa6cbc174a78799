#!/usr/bin/env python3
"""podnet dns vs dnsmasq on the query mix of pods with `ndots:5`, same Service names, same
machine, one run, the servers interleaved (needs root).

The mix (bench/dns_mix.py): A and AAAA for every name glibc tries, half the Services
dual-stack, and the NXDOMAINs of the search list (a lookup of `svc.ns` or of a
4-dot name first tries the pod's search domains): about 57 % of the queries are NXDOMAIN.
Both servers run in one network namespace of our own (`pnb-dns-<random id>`) on loopback
ports; dnsperf runs there too, pinned to CPU 0, the servers to CPU 1 (when there are two).
podnet dns serves the names from a SQLite store holding the Services; dnsmasq serves the
same names from an addn-hosts file, authoritative for cluster.local (`--local`), so it
answers the same NXDOMAINs. Same rules for both: each round starts both servers afresh,
then
  cold   one pass over the mix right after start (podnet builds answers on first use;
         dnsmasq has read its hosts file at start), the servers one after the other;
  plain  `--seconds` of dnsperf over the mix, without EDNS;
  edns   the same with EDNS0 on every query (`dnsperf -e`);
each server in turn, the order alternating between rounds. We report median and range over
the rounds of QPS, average latency and server CPU time per query (utime+stime of the
server process, all threads, /proc/<pid>/stat), the ratios podnet/dnsmasq per round, the
response codes of the cold pass (checked against the mix: both servers must give the same
answers), each server's peak RSS, and one JSON line with the load average.

    sudo .venv/bin/python bench/dns.py [--names 10000] [--seconds 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns_mix as mix
from report import load, ratios, show, spread

NETNS = f"pnb-dns-{secrets.token_hex(3)}"  # benches own the pnb- prefix; unique per run
PODNET_PORT, DNSMASQ_PORT = 5301, 5302
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
# dnsperf on the first CPU, each server on the second: both servers get the same seat,
# and neither competes with dnsperf for a core.
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
CPU_CLIENT, CPU_SERVER = 0, 1
SERVERS = ("podnet", "dnsmasq")
MODES = ("cold", "plain", "edns")


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def in_ns(*argv: str, cpu: int | None = None) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None and PIN else []
    return ["ip", "netns", "exec", NETNS, *pin, *argv]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fill_store(url: str, n: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from podnet.api.objects import from_dict
    from podnet.datastore.interface import open_datastore
    store = open_datastore(url)
    store.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}))
    for i in [None, *range(n)]:
        store.create(from_dict(mix.service(i)))
    store.close()


def wait_answer(port: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cp = sh(*in_ns("dig", "@127.0.0.1", "-p", str(port), "+short", "+time=1", "+tries=1", mix.READY_NAME),
                check=False)
        if mix.READY_IP in cp.stdout.split():  # (dig +short prints its errors on stdout too)
            return
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} never answered {mix.READY_NAME}")


def dnsperf(port: int, qfile: str, seconds: int | None, edns: bool = False) -> dict[str, float]:
    """One dnsperf run: `seconds` long, or one pass over the file when None."""
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-c", "1", "-q", "200"]
    argv += (["-e"] if edns else []) + (["-n", "1"] if seconds is None else ["-l", str(seconds)])
    out = sh(*in_ns(*argv, cpu=CPU_CLIENT), timeout=(seconds or 600) + 60).stdout

    def num(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+)", out)
        if not m:
            raise RuntimeError(f"dnsperf output lacks {label!r}:\n{out}")
        return float(m.group(1))
    codes = dict((c, int(k)) for c, k in re.findall(r"([A-Z]+) (\d+) \(", out.split("Response codes:")[1].split("\n")[0]))
    return {"completed": num("Queries completed"), "lost": num("Queries lost"), "qps": num("Queries per second"),
            "latency_ms": num("Average Latency \\(s\\)") * 1000, "rcodes": codes}


def measure(pid: int, port: int, qfile: str, seconds: int | None, edns: bool = False) -> dict:
    before = cpu_seconds(pid)
    r = dnsperf(port, qfile, seconds, edns)
    r["cpu_us_per_query"] = (cpu_seconds(pid) - before) / max(r["completed"], 1) * 1e6
    return r


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_servers(tmp: Path, url: str, n: int) -> dict[str, tuple[subprocess.Popen, int]]:
    podnet = subprocess.Popen(in_ns(str(ROOT / ".venv/bin/podnet"), "--datastore", url, "dns",
                                    "--listen", f"127.0.0.1:{PODNET_PORT}", "--upstream", "none",
                                    cpu=CPU_SERVER),
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "podnet.log", "a"))
    dnsmasq = subprocess.Popen(in_ns("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                                     "--no-resolv", "--no-hosts", f"--addn-hosts={tmp / 'hosts'}",
                                     f"--local=/{mix.ZONE}/", "--listen-address=127.0.0.1",
                                     "--bind-interfaces", f"--port={DNSMASQ_PORT}", "--local-ttl=30",
                                     "--user=root", "--pid-file=", f"--cache-size={2 * n + 1000}",
                                     cpu=CPU_SERVER),
                               stdout=subprocess.DEVNULL, stderr=open(tmp / "dnsmasq.log", "a"))
    return {"podnet": (podnet, PODNET_PORT), "dnsmasq": (dnsmasq, DNSMASQ_PORT)}


def one_round(rnd: int, tmp: Path, url: str, args) -> dict[str, dict]:
    """Fresh servers; the cold pass, then the timed plain and EDNS runs, interleaved."""
    servers = start_servers(tmp, url, args.names)
    out: dict[str, dict] = {s: {} for s in SERVERS}
    try:
        t0 = time.monotonic()
        for _, port in servers.values():
            wait_answer(port)
        print(f"round {rnd + 1}: both servers answer after {time.monotonic() - t0:.1f}s", file=sys.stderr)
        order = SERVERS if rnd % 2 == 0 else SERVERS[::-1]
        qfile = str(tmp / "queries.txt")
        for mode in MODES:
            for name in order:
                proc, port = servers[name]
                r = measure(proc.pid, port, qfile, None if mode == "cold" else args.seconds, edns=mode == "edns")
                out[name][mode] = r
                print(f"round {rnd + 1} {mode:5s} {name:8s} {r['qps']:9.0f} QPS  {r['latency_ms']:.3f} ms  "
                      f"{r['cpu_us_per_query']:.1f} us CPU/query  lost {r['lost']:.0f}  {r['rcodes']}",
                      file=sys.stderr)
        for name, (proc, _) in servers.items():
            out[name]["peak_rss_mib"] = peak_rss_mib(proc.pid)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--names", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("dnsperf") or not shutil.which("dnsmasq"):
        print("needs root, dnsperf and dnsmasq", file=sys.stderr)
        return 2
    load_before = load()
    tmp = Path(tempfile.mkdtemp(prefix="pnb-dns-"))
    sh("ip", "netns", "add", NETNS)
    try:
        sh(*in_ns("ip", "link", "set", "lo", "up"))
        lines = mix.query_lines(args.names)
        (tmp / "queries.txt").write_text("\n".join(lines) + "\n")
        (tmp / "hosts").write_text("\n".join(mix.hosts_lines(args.names)) + "\n")
        url = f"sqlite://{tmp / 'store.db'}"
        t0 = time.monotonic()
        fill_store(url, args.names)
        print(f"store: {args.names} Services in {time.monotonic() - t0:.1f}s; mix: {len(lines)} queries",
              file=sys.stderr)
        rounds = [one_round(r, tmp, url, args) for r in range(args.rounds)]
    finally:
        sh("ip", "netns", "del", NETNS, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    report(rounds, args, len(lines), load_before)
    return 0


def rcodes_as_expected(run: dict, want: dict[str, int]) -> bool:
    """Only NOERROR and NXDOMAIN, each as many as the mix has, less at most the lost queries."""
    got, lost = run["rcodes"], run["lost"]
    return set(got) <= set(want) and all(want[c] - lost <= got.get(c, 0) <= want[c] for c in want)


def report(rounds: list[dict[str, dict]], args, n_queries: int, load_before: list[float]) -> None:
    want = mix.expected_rcodes(args.names)
    figures: dict = {s: {} for s in SERVERS}
    rat: dict = {}
    print(f"\n{'':16s}{'QPS':>24s}{'latency ms':>24s}{'CPU us/query':>22s}")
    for mode in MODES:
        for s in SERVERS:
            f = {k: spread([r[s][mode][k] for r in rounds]) for k in ("qps", "latency_ms", "cpu_us_per_query")}
            figures[s][mode] = f
            print(f"{mode + ' ' + s:16s}" + "".join(f"{show([r[s][mode][k] for r in rounds], fmt):>24s}"
                  for k, fmt in (("qps", "{:.0f}"), ("latency_ms", "{:.3f}"), ("cpu_us_per_query", "{:.2f}"))))
        for k in ("qps", "cpu_us_per_query"):
            rat[f"{mode}_{k}"] = spread(ratios([r["podnet"][mode][k] for r in rounds],
                                               [r["dnsmasq"][mode][k] for r in rounds]), 3)
    for s in SERVERS:
        figures[s]["peak_rss_mib"] = spread([r[s]["peak_rss_mib"] for r in rounds], 1)
        figures[s]["cold_rcodes"] = [r[s]["cold"]["rcodes"] for r in rounds]
    same = all(rcodes_as_expected(r[s]["cold"], want) for r in rounds for s in SERVERS)
    print(f"cold-pass response codes {'as the mix expects' if same else 'NOT as the mix expects'} for both "
          f"servers (want {want}, less the queries dnsperf counted lost)")
    for mode in MODES:
        print(f"ratio podnet/dnsmasq {mode:5s}: QPS {rat[f'{mode}_qps']['median']} "
              f"[{rat[f'{mode}_qps']['min']}-{rat[f'{mode}_qps']['max']}]  CPU per query "
              f"{rat[f'{mode}_cpu_us_per_query']['median']} [{rat[f'{mode}_cpu_us_per_query']['min']}-"
              f"{rat[f'{mode}_cpu_us_per_query']['max']}]  (goal: QPS >= 1.0, CPU <= 1.2)")
    print(f"peak RSS: podnet {show([r['podnet']['peak_rss_mib'] for r in rounds], '{:.0f}')} MiB, "
          f"dnsmasq {show([r['dnsmasq']['peak_rss_mib'] for r in rounds], '{:.1f}')} MiB")
    print(json.dumps({"bench": "dns", "names": args.names, "queries_in_mix": n_queries, "seconds": args.seconds,
                      "rounds": args.rounds, "figures": figures, "ratios_podnet_over_dnsmasq": rat,
                      "expected_rcodes_per_pass": want, "rcodes_as_expected": same,
                      "loadavg_before": load_before, "loadavg_after": load()}))


if __name__ == "__main__":
    sys.exit(main())
