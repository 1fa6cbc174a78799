#!/usr/bin/env python3
"""Every bench at its default sizes, one after the other: their JSON lines in one file and a summary.

Each bench runs as its own process (`python bench/<name>.py <its flags>`), its table and
progress going to the terminal as usual; the last JSON line it prints is recorded in
`--out` (bench-results.jsonl, one record a bench: its name, argv, exit code, seconds and
the line it printed), then a summary shows each bench's headline figures with median,
range, how many runs held the issue's goal, and the load average before and after.

Sizes are the benches' own flags, passed through per bench:

    sudo .venv/bin/python bench/run_all.py --with services="--services 50000" --only services,dns

The machine's 1-minute load average is checked first: above `--max-load` (default: the
number of cores) the figures would measure the queue for the CPU rather than podnet, and
the run refuses unless `--force`. Needs root, as the benches do. Pure parts (argument
pass-through, the summary from recorded lines) are in this module and unit-tested.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("netns_exec", "datastore", "datastore_watch", "apiserver", "cni", "services", "dns", "policy", "policy_connect",
           "flows", "agent_start", "lab_scale", "rollout")
# per bench: (label, path into its JSON line, goal as (op, value) or None)
Goal = tuple[str, float] | None
HEADLINES: dict[str, list[tuple[str, str, Goal]]] = {
    "netns_exec": [("netns exec crowded/alone", "ratio", None)],
    "datastore": [("etcd create / raw put", "etcd_create_vs_raw_put", None)],
    "datastore_watch": [("SQLite watch p50, 20 watchers (ms)", "figures.sqlite.p50_ms", ("<", 2)),
                        ("SQLite watch p99, 20 watchers (ms)", "figures.sqlite.p99_ms", ("<", 10))],
    "apiserver": [("API create / store create", "create_api_vs_store", None)],
    "cni": [],
    "services": [("podnet full sync, big (s)", "figures.podnet.full_big_s", ("<", 10)),
                 ("podnet one endpoint change (ms)", "figures.podnet.change_big_ms", ("<", 50)),
                 ("first packet, big / 1 service", "latency_growth.podnet", ("<=", 1.10)),
                 ("service part peak RSS (MiB)", "figures.podnet.agent_part_peak_rss_mib", ("<", 1024)),
                 ("full sync podnet / kube-proxy, 1k", "ratios_podnet_over_kube_proxy.full_1000_s", None)],
    "dns": [("QPS podnet/dnsmasq, warm", "ratios_podnet_over_dnsmasq.plain_qps", (">=", 1.0)),
            ("QPS podnet/dnsmasq, EDNS", "ratios_podnet_over_dnsmasq.edns_qps", (">=", 1.0)),
            ("QPS podnet/dnsmasq, cold", "ratios_podnet_over_dnsmasq.cold_qps", (">=", 1.0)),
            ("CPU/query podnet/dnsmasq, warm", "ratios_podnet_over_dnsmasq.plain_cpu_us_per_query", ("<=", 1.2)),
            ("podnet DNS peak RSS (MiB)", "figures.podnet.peak_rss_mib", None)],
    "policy": [("full sync (s)", "figures.full_sync_s", ("<", 10)),
               ("throughput with/without", "ratios.throughput_with_over_without", (">=", 0.95))],
    "policy_connect": [],
    "flows": [("connects/s flows on/off", "ratios.connects_on_over_off", (">=", 0.95)),
              ("throughput flows on/off", "ratios.throughput_on_over_off", (">=", 0.95))],
    "agent_start": [("restart to first full sync (s)", "restart_s", ("<", 5))],
    "lab_scale": [("all Ready (s)", "figures.lab.all_ready_s", ("<", 30)),
                  ("peak RSS all lab processes (MiB)", "figures.lab.peak_rss_mib", ("<", 3072))],
    "rollout": [("failed per 1000, graceful", "failed_per_1000.graceful", ("<=", 0))],
}


def parse_with(items: list[str]) -> dict[str, list[str]]:
    """`--with bench="--flag v ..."` (repeatable, later ones add to earlier) into argv tails."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, flags = item.partition("=")
        if not sep or name not in BENCHES:
            raise ValueError(f"--with wants BENCH=\"FLAGS\" with BENCH one of {', '.join(BENCHES)}: {item!r}")
        out.setdefault(name, []).extend(shlex.split(flags))
    return out


def plan(only: str, skip: str, extra: dict[str, list[str]], python: str = sys.executable) -> list[tuple[str, list[str]]]:
    """(bench, argv) in BENCHES order: `only`/`skip` comma lists; each bench's flags appended."""
    names = [n for n in (only.split(",") if only else BENCHES) if n]
    bad = [n for n in names + [n for n in skip.split(",") if n] if n not in BENCHES]
    if bad:
        raise ValueError(f"no such bench: {', '.join(bad)} (have {', '.join(BENCHES)})")
    return [(n, [python, str(ROOT / "bench" / f"{n}.py"), *extra.get(n, [])])
            for n in BENCHES if n in names and n not in skip.split(",")]


def last_json(stdout: str) -> dict | None:
    """The last line of a bench's output that is a JSON object."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                got = json.loads(line)
            except ValueError:
                continue
            if isinstance(got, dict):
                return got
    return None


def pick(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def as_spread(v: Any) -> dict | None:
    """A figure as {median, min, max, n}: a bench's spread, a list of per-run values, or one number."""
    if isinstance(v, dict) and {"median", "min", "max"} <= set(v):
        return {"median": v["median"], "min": v["min"], "max": v["max"], "n": v.get("n", 1), "values": None}
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
        s = sorted(v)
        mid = len(s) // 2
        med = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
        return {"median": med, "min": s[0], "max": s[-1], "n": len(s), "values": list(v)}
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"median": v, "min": v, "max": v, "n": 1, "values": [v]}
    return None


def held(s: dict, goal: Goal) -> str:
    """How many runs held the goal: exact from per-run values; from a spread, the bounds
    (all if the worst run held, none if the best did not, else `a-b/n`)."""
    if goal is None:
        return ""
    op, lim = goal
    ok = {"<": lambda x: x < lim, "<=": lambda x: x <= lim, ">=": lambda x: x >= lim}[op]
    n = s["n"]
    if s["values"] is not None:
        return f"{sum(ok(x) for x in s['values'])}/{n}"
    worst, best = (s["max"], s["min"]) if op in ("<", "<=") else (s["min"], s["max"])
    if ok(worst):
        return f"{n}/{n}"
    if not ok(best):
        return f"0/{n}"
    return f"1-{n - 1}/{n}"


def num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def summary_rows(records: list[dict]) -> list[list[str]]:
    """Rows of (bench, figure, median, range, goal held, load before -> after) from recorded records."""
    rows = []
    for rec in records:
        res = rec.get("result") or {}
        lb = res.get("loadavg_before") or res.get("load_before")
        la = res.get("loadavg_after") or res.get("load_after")
        loads = f"{lb[0]:.1f} -> {la[0]:.1f}" if lb and la else "-"
        if rec.get("rc") != 0 or not res:
            rows.append([rec["bench"], f"FAILED (exit {rec.get('rc')})" if rec.get("rc") else "no JSON line",
                         "-", "-", "", loads])
            continue
        heads = HEADLINES.get(rec["bench"], [])
        if not heads:
            rows.append([rec["bench"], "(see its table)", "-", "-", "", loads])
        for label, path, goal in heads:
            s = as_spread(pick(res, path))
            if s is None:
                rows.append([rec["bench"], label, "-", "-", "", loads])
                continue
            want = f" (goal {goal[0]} {num(goal[1])})" if goal else ""
            rows.append([rec["bench"], label + want, num(s["median"]), f"{num(s['min'])}-{num(s['max'])}",
                         held(s, goal), loads])
    return rows


def table(rows: list[list[str]]) -> str:
    head = ["bench", "figure", "median", "range", "goal held", "load 1m before -> after"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--with", dest="with_", action="append", default=[], metavar='BENCH="FLAGS"',
                    help="flags for one bench, e.g. services=\"--services 50000 --runs 3\" (repeatable)")
    ap.add_argument("--only", default="", help=f"comma list of benches (default all: {','.join(BENCHES)})")
    ap.add_argument("--skip", default="", help="comma list of benches to leave out")
    ap.add_argument("--out", type=Path, default=Path("bench-results.jsonl"))
    ap.add_argument("--max-load", type=float, default=float(os.cpu_count() or 1),
                    help="refuse above this 1-minute load average (default: the number of cores)")
    ap.add_argument("--force", action="store_true", help="run even above --max-load")
    ap.add_argument("--summary", type=Path, help="only print the summary of a recorded results file")
    a = ap.parse_args(argv)
    if a.summary:
        print(table(summary_rows([json.loads(x) for x in a.summary.read_text().splitlines() if x.strip()])))
        return 0
    try:
        runs = plan(a.only, a.skip, parse_with(a.with_))
    except ValueError as e:
        ap.error(str(e))
    if os.geteuid() != 0:
        print("bench/run_all.py needs root, as the benches do (network namespaces, nftables)", file=sys.stderr)
        return 2
    load1 = os.getloadavg()[0]
    if load1 > a.max_load and not a.force:
        print(f"1-minute load average {load1:.1f} is above {a.max_load:g}: figures taken now would measure "
              f"the wait for a CPU more than podnet; wait for a quieter machine or pass --force "
              f"(and read the ratios, not the absolute figures)", file=sys.stderr)
        return 3
    out = a.out.resolve()
    out.write_text("")
    records = []
    for name, cmd in runs:
        print(f"== {name}: {shlex.join(cmd[1:])} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        sys.stdout.write(cp.stdout)
        rec = {"bench": name, "argv": cmd[1:], "rc": cp.returncode, "seconds": round(time.monotonic() - t0, 1),
               "result": last_json(cp.stdout)}
        records.append(rec)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
    print(f"\nresults: {out}")
    print(table(summary_rows(records)))
    return 0 if all(r["rc"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
