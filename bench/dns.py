#!/usr/bin/env python3
"""podnet dns vs dnsmasq, same 10,000 service names, same machine, one run (needs root).

Both servers run in one network namespace of our own (`pnb-dns-<random id>`) on loopback ports;
dnsperf runs there too, pinned to CPU 0, the servers to CPU 1 (when there are two). podnet dns serves the names from a SQLite store holding 10,000
Services; dnsmasq serves the same names from an addn-hosts file. Each round runs dnsperf
for `--seconds` against each server in turn (podnet first warmed by one pass over the
names, as its answers are built on first use); we report the medians of QPS, average
latency, and server CPU time per query (utime+stime of the server process, all threads,
from /proc/<pid>/stat), the ratios podnet/dnsmasq, and one JSON line at the end.

    sudo .venv/bin/python bench/dns.py [--names 10000] [--seconds 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETNS = f"pnb-dns-{secrets.token_hex(3)}"  # benches own the pnb- prefix; unique per run
PODNET_PORT, DNSMASQ_PORT = 5301, 5302
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
# dnsperf on the first CPU, each server on the second: both servers get the same seat,
# and neither competes with dnsperf for a core.
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
CPU_CLIENT, CPU_SERVER = 0, 1


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def in_ns(*argv: str, cpu: int | None = None) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None and PIN else []
    return ["ip", "netns", "exec", NETNS, *pin, *argv]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def fill_store(url: str, n: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from podnet.api.objects import from_dict
    from podnet.datastore.interface import open_datastore
    store = open_datastore(url)
    store.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}))
    for i in range(n):
        store.create(from_dict({"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": f"svc{i}", "namespace": "bench"},
                                "spec": {"clusterIP": svc_ip(i), "ports": [{"port": 80, "name": "http"}]}}))
    store.close()


def svc_ip(i: int) -> str:
    return f"10.96.{16 + i // 250}.{1 + i % 250}"


def wait_answer(port: int, name: str, expect: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cp = sh(*in_ns("dig", "@127.0.0.1", "-p", str(port), "+short", "+time=1", "+tries=1", name), check=False)
        if expect in cp.stdout.split():  # (dig +short prints its errors on stdout too)
            return
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} never answered {name}")


def dnsperf(port: int, qfile: str, seconds: int | None, once: bool = False) -> dict[str, float]:
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-c", "1", "-q", "200"]
    argv += ["-n", "1"] if once else ["-l", str(seconds)]
    out = sh(*in_ns(*argv, cpu=CPU_CLIENT), timeout=(seconds or 60) + 60).stdout

    def num(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+)", out)
        if not m:
            raise RuntimeError(f"dnsperf output lacks {label!r}:\n{out}")
        return float(m.group(1))
    lost = num("Queries lost")
    return {"completed": num("Queries completed"), "lost": lost, "qps": num("Queries per second"),
            "latency_ms": num("Average Latency \\(s\\)") * 1000}


def measure(pid: int, port: int, qfile: str, seconds: int) -> dict[str, float]:
    before = cpu_seconds(pid)
    r = dnsperf(port, qfile, seconds)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("dnsperf") or not shutil.which("dnsmasq"):
        print("needs root, dnsperf and dnsmasq", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="pn-dns-bench-"))
    procs: list[subprocess.Popen] = []
    sh("ip", "netns", "add", NETNS)
    try:
        sh(*in_ns("ip", "link", "set", "lo", "up"))
        names = [f"svc{i}.bench.svc.cluster.local" for i in range(args.names)]
        qfile = tmp / "queries.txt"
        qfile.write_text("".join(f"{n} A\n" for n in names))
        (tmp / "hosts").write_text("".join(f"{svc_ip(i)} {n}\n" for i, n in enumerate(names)))
        url = f"sqlite://{tmp / 'store.db'}"
        t0 = time.monotonic()
        fill_store(url, args.names)
        print(f"store: {args.names} Services in {time.monotonic() - t0:.1f}s", file=sys.stderr)

        podnet = subprocess.Popen(in_ns(str(ROOT / ".venv/bin/podnet"), "--datastore", url, "dns",
                                        "--listen", f"127.0.0.1:{PODNET_PORT}", "--upstream", "none",
                                        cpu=CPU_SERVER),
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "podnet.log", "w"))
        procs.append(podnet)
        dnsmasq = subprocess.Popen(in_ns("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                                         "--no-resolv", "--no-hosts", f"--addn-hosts={tmp / 'hosts'}",
                                         "--listen-address=127.0.0.1", "--bind-interfaces",
                                         f"--port={DNSMASQ_PORT}", "--local-ttl=30", "--user=root",
                                         "--pid-file=", f"--cache-size={args.names + 1000}",
                                         cpu=CPU_SERVER),
                                   stdout=subprocess.DEVNULL, stderr=open(tmp / "dnsmasq.log", "w"))
        procs.append(dnsmasq)
        t0 = time.monotonic()
        wait_answer(PODNET_PORT, names[-1], svc_ip(args.names - 1))
        print(f"podnet dns: synced in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        wait_answer(DNSMASQ_PORT, names[-1], svc_ip(args.names - 1))
        warm = dnsperf(PODNET_PORT, str(qfile), None, once=True)
        print(f"podnet dns: warm-up pass (answers built on first use): {warm['qps']:.0f} QPS", file=sys.stderr)

        results: dict[str, list[dict[str, float]]] = {"podnet": [], "dnsmasq": []}
        servers = [("podnet", podnet, PODNET_PORT), ("dnsmasq", dnsmasq, DNSMASQ_PORT)]
        for rnd in range(args.rounds):
            # Alternate who goes first: the machine's load drifts between runs.
            for name, proc, port in (servers if rnd % 2 == 0 else servers[::-1]):
                r = measure(proc.pid, port, str(qfile), args.seconds)
                results[name].append(r)
                print(f"round {rnd + 1} {name:8s} {r['qps']:9.0f} QPS  {r['latency_ms']:.3f} ms  "
                      f"{r['cpu_us_per_query']:.1f} us CPU/query  lost {r['lost']:.0f}", file=sys.stderr)
        med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
        p, d = med["podnet"], med["dnsmasq"]
        summary = {
            "bench": "dns", "names": args.names, "seconds": args.seconds, "rounds": args.rounds,
            "podnet_qps": round(p["qps"]), "dnsmasq_qps": round(d["qps"]),
            "podnet_latency_ms": round(p["latency_ms"], 3), "dnsmasq_latency_ms": round(d["latency_ms"], 3),
            "podnet_cpu_us_per_query": round(p["cpu_us_per_query"], 2),
            "dnsmasq_cpu_us_per_query": round(d["cpu_us_per_query"], 2),
            "qps_ratio": round(p["qps"] / d["qps"], 3),
            "cpu_ratio": round(p["cpu_us_per_query"] / d["cpu_us_per_query"], 3),
            "podnet_warmup_qps": round(warm["qps"]),
        }
        print(f"\n{'':10s}{'QPS':>10s}{'latency ms':>12s}{'CPU us/q':>10s}")
        for name, m in med.items():
            print(f"{name:10s}{m['qps']:10.0f}{m['latency_ms']:12.3f}{m['cpu_us_per_query']:10.1f}")
        print(f"ratio podnet/dnsmasq: QPS {summary['qps_ratio']}  CPU per query {summary['cpu_ratio']}"
              f"  (goal: QPS >= 1.0, CPU <= 1.2)")
        print(json.dumps(summary))
        return 0
    finally:
        for p_ in procs:
            stop(p_)
        sh("ip", "netns", "del", NETNS, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
