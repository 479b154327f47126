"""Percentiles and tables for benchmark reports."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max (and mean) of durations given in seconds, reported in milliseconds."""
    if not samples_s:
        return {"count": 0}
    ordered = sorted(samples_s)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 99
    ms = 1000.0
    return {
        "count": len(ordered),
        "mean_ms": round(statistics.fmean(ordered) * ms, 3),
        "p50_ms": round(cuts[49] * ms, 3),
        "p95_ms": round(cuts[94] * ms, 3),
        "p99_ms": round(cuts[98] * ms, 3),
        "max_ms": round(ordered[-1] * ms, 3),
    }


def table(rows: dict[str, dict[str, float]]) -> str:
    """A plain text table: one row per measurement, one column per figure."""
    columns = ["count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    width = max(len(name) for name in rows) + 2
    lines = [" " * width + "".join(f"{c:>10}" for c in columns)]
    for name, figures in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{figures.get(c, ''):>10}" for c in columns))
    return "\n".join(lines)
