"""Median, range and machine load: how every bench states a figure. Pure except `load()`.

The machine the benches run on is shared: each JSON line records the load average before
and after the run (`os.getloadavg()`), and every figure is a median with its range over
the runs it came from, so a reader can tell a slow phase from a slow layout.
"""
from __future__ import annotations

import os
import statistics
from typing import Iterable


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def spread(values: Iterable[float], digits: int = 4) -> dict[str, float | int]:
    """Median, min, max and count of `values` (at least one)."""
    vals = list(values)
    if not vals:
        raise ValueError("spread of no values")
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals)}


def show(values: Iterable[float], fmt: str = "{:.3f}") -> str:
    """`median [min-max]` as text."""
    s = spread(values, digits=12)
    return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}-{fmt.format(s['max'])}]"


def ratios(num: list[float], den: list[float]) -> list[float]:
    """Pairwise ratios of two interleaved series (run i of one side over run i of the other)."""
    if len(num) != len(den):
        raise ValueError(f"series of different lengths: {len(num)} and {len(den)}")
    return [a / b for a, b in zip(num, den)]
