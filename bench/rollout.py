#!/usr/bin/env python3
"""Rollout under load (issue 17 §1): failed requests through scale 3 -> 1 -> 3 and deleting
each pod in turn, with a client pod looping on the Service's virtual IPs (one TCP
connection per request, >= 600 requests per run), podnet's graceful termination against
the old immediate deletion (terminationGracePeriodSeconds 0, `--grace-period=0 --force`)
side by side on one lab, the runs alternating; a third side, graceful deletion without the
preStop sleep, shows what the hook adds (it covers the moment between the pod turning
Terminating and every node's proxy having heard). The scenario is tests/e2e/rollout_lib.py,
the one the e2e test asserts on. Needs root.

Prints per run and side the failed/total, the failure rate per side (median and range),
the ratio immediate/graceful of failures per 1000 requests (pairwise; a graceful run
with no failure counts as 1/total there, so the ratio is a lower bound), and one JSON
line with the machine's load.

    sudo .venv/bin/python bench/rollout.py [--runs 3] [--encap none|vxlan] [--dual-stack]
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import rollout_lib  # noqa: E402
from lablib import Lab  # noqa: E402
from report import load, ratios, show, spread  # noqa: E402

SIDES = ("graceful", "immediate", "no-prestop")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--encap", choices=("none", "vxlan"), default="none")
    ap.add_argument("--dual-stack", action="store_true")
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pnb-rollout-"))
    lab = Lab("pnb" + secrets.token_hex(2), home)
    up = ["up", "--name", lab.name, "--nodes", "2", "--encap", a.encap] + (["--dual-stack"] if a.dual_stack else [])
    load_before = load()
    runs: dict[str, list[dict]] = {s: [] for s in SIDES}
    try:
        lab.podnet(*up)
        for r in range(a.runs):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for side in order:
                out = rollout_lib.run(lab, graceful=side != "immediate", dual_stack=a.dual_stack,
                                      name=f"r{r}{side[0]}", pre_stop=side == "graceful")
                runs[side].append(out.as_dict())
                print(f"run {r + 1} {side:10s}: {out.failed}/{out.total} failed in {out.seconds:.1f}s "
                      f"{out.errors[:2]}", flush=True)
    finally:
        lab.down()
    rate = {s: [1000 * x["failed"] / x["total"] for x in runs[s]] for s in SIDES}
    floor = [1000 * max(x["failed"], 1) / x["total"] for x in runs["graceful"]]
    ratio = ratios(rate["immediate"], floor)
    fam = "dual stack" if a.dual_stack else "IPv4"
    print(f"2 nodes, encap {a.encap}, {fam}, {a.runs} runs (load {load_before} -> {load()})")
    for s in SIDES:
        print(f"  {s:10s} failed per 1000 requests {show(rate[s], '{:.2f}'):>24s}   "
              f"failed {sum(x['failed'] for x in runs[s])} of {sum(x['total'] for x in runs[s])}")
    print(f"  immediate/graceful failures, at least {show(ratio, '{:.1f}')}")
    print("  (graceful: 1 s preStop sleep; no-prestop: graceful deletion without it)")
    print(json.dumps({"bench": "rollout", "encap": a.encap, "dual_stack": a.dual_stack, "runs": a.runs,
                      "failed": {s: [x["failed"] for x in runs[s]] for s in SIDES},
                      "total": {s: [x["total"] for x in runs[s]] for s in SIDES},
                      "failed_per_1000": {s: spread(rate[s], 3) for s in SIDES},
                      "ratio_immediate_over_graceful_at_least": spread(ratio, 2),
                      "load_before": load_before, "load_after": load()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
