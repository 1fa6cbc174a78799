"""bench/run_all.py's pure parts: which benches run with which flags, how their recorded
JSON lines become the summary table (median, range, goal held N/M, load)."""
from __future__ import annotations

import json

import pytest

from bench_modules import BENCH, load_bench

ra = load_bench("run_all")


def test_every_bench_with_a_main_is_run_and_the_helpers_are_not():
    benches = {p.stem for p in BENCH.glob("*.py") if "__main__" in p.read_text() and p.stem != "run_all"}
    assert set(ra.BENCHES) <= benches
    # the rest are parts other benches run (the floor of lab_scale, etc.)
    assert benches - set(ra.BENCHES) <= {"lab_raw", "policy_scale", "policy_cluster", "dns_mix",
                                         "kube_proxy_nft", "iptables_shape", "report"}


def test_flags_pass_through_to_their_bench_only_and_in_order():
    extra = ra.parse_with(['services=--services 50000 --kube-proxy-services 2000', "dns=--names 100000",
                           "services=--runs 1"])
    steps = ra.plan("services,dns,policy", "", extra, python="py")
    assert [n for n, _ in steps] == ["services", "dns", "policy"]  # BENCHES order, not the --only order
    argv = dict(steps)
    assert argv["services"][0] == "py" and argv["services"][1].endswith("bench/services.py")
    assert argv["services"][2:] == ["--services", "50000", "--kube-proxy-services", "2000", "--runs", "1"]
    assert argv["dns"][2:] == ["--names", "100000"]
    assert argv["policy"][2:] == []


def test_default_plan_is_every_bench_at_default_sizes_and_skip_leaves_out():
    steps = ra.plan("", "lab_scale,rollout", {}, python="py")
    assert [n for n, _ in steps] == [n for n in ra.BENCHES if n not in ("lab_scale", "rollout")]
    assert all(len(argv) == 2 for _, argv in steps)


@pytest.mark.parametrize("bad", [["nosuch=--x 1"], ["services"]])
def test_bad_with_is_refused(bad):
    with pytest.raises(ValueError):
        ra.parse_with(bad)


def test_unknown_bench_is_refused():
    with pytest.raises(ValueError, match="nosuch"):
        ra.plan("services,nosuch", "", {})


def test_last_json_line_wins_and_tables_are_not_json():
    out = "measure  x\n{not json\n" + json.dumps({"bench": "a", "v": 1}) + "\n" + json.dumps({"bench": "b"}) + "\ndone\n"
    assert ra.last_json(out) == {"bench": "b"}
    assert ra.last_json("no json here\n") is None


def _rec(bench, result, rc=0):
    return {"bench": bench, "argv": [], "rc": rc, "seconds": 1.0, "result": result}


def test_summary_from_recorded_lines():
    sp = lambda med, lo, hi, n=3: {"median": med, "min": lo, "max": hi, "n": n}  # noqa: E731
    services = {"figures": {"podnet": {"full_big_s": sp(8.0, 7.0, 9.5), "change_big_ms": sp(45.0, 30.0, 60.0),
                                       "agent_part_peak_rss_mib": sp(1500, 1400, 1600)}},
                "latency_growth": {"podnet": sp(1.01, 0.9, 1.05)},
                "loadavg_before": [30.0, 1, 1], "loadavg_after": [41.26, 1, 1]}
    flows = {"ratios": {"connects_on_over_off": [0.4, 0.96, 0.5], "throughput_on_over_off": [0.95, 0.97]},
             "load_before": [1.0, 0, 0], "load_after": [2.0, 0, 0]}
    rows = ra.summary_rows([_rec("services", services), _rec("flows", flows), _rec("dns", None, rc=1),
                            _rec("cni", {"bench": "cni"})])
    by = {(r[0], r[1].split(" (goal")[0]): r for r in rows}
    assert by[("services", "podnet full sync, big (s)")][2:] == ["8", "7-9.5", "3/3", "30.0 -> 41.3"]
    assert by[("services", "podnet one endpoint change (ms)")][4] == "1-2/3"  # from a spread: bounds only
    assert by[("services", "service part peak RSS (MiB)")][4] == "0/3"
    assert by[("services", "first packet, big / 1 service")][4] == "3/3"
    assert by[("services", "full sync podnet / kube-proxy, 1k")][2:5] == ["-", "-", ""]  # not in the line
    assert by[("flows", "connects/s flows on/off")][2:5] == ["0.5", "0.4-0.96", "1/3"]  # per-run values: exact
    assert by[("flows", "throughput flows on/off")][4] == "2/2"
    assert by[("dns", "FAILED (exit 1)")][5] == "-"
    assert by[("cni", "(see its table)")][2] == "-"
    text = ra.table(rows)
    assert text.splitlines()[0].split()[:3] == ["bench", "figure", "median"]
    assert len(text.splitlines()) == len(rows) + 1


def test_summary_mode_reads_a_results_file(tmp_path, capsys):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(_rec("agent_start", {"restart_s": {"median": 4.2, "min": 3.9, "max": 6.1, "n": 3},
                                                 "load_before": [3, 0, 0], "load_after": [4, 0, 0]})) + "\n")
    assert ra.main(["--summary", str(f)]) == 0
    out = capsys.readouterr().out
    assert "restart to first full sync (s)" in out and "4.2" in out and "1-2/3" in out
