"""`scale`: what each added node costs, as CPU per unit of work of every server process and Redis.

On a machine with a few cores, throughput cannot show whether a second node adds capacity (the nodes,
Redis and the load generator share the same cores); the CPU one unit of work costs can. The same
fixed offered load (not as fast as possible: the same work for every row) runs on one node in memory
(the embedded default), optionally one node on Redis, then 2, 3... nodes on one Redis, each on fresh
processes, and the report divides the CPU the node processes and Redis used over the measurement by
the work done in it: fragments delivered (`fanout`), or engagements routed and handled from arrival
to wrap-up (`routing`). The load generator's CPU is reported apart, never counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtest import fanout, routing
from loadtest.cluster import center
from loadtest.connections import API_KEY, SECRET, raise_nofile

Progress = Callable[[str, int, int], None]


@dataclass
class Setup:
    """One row: how many nodes, and whether they keep their state in Redis."""

    nodes: int
    redis: bool

    @property
    def label(self) -> str:
        return f"{self.nodes} node{'s' if self.nodes > 1 else ''}" + (" + Redis" if self.redis else ", in memory")


def setups(counts: list[int], one_on_redis: bool) -> list[Setup]:
    rows = [Setup(n, n > 1) for n in counts]
    if one_on_redis and 1 in counts:
        rows.insert(counts.index(1) + 1, Setup(1, True))
    return rows


def fanout_row(setup: Setup, plan: fanout.Plan, progress: Progress) -> dict[str, Any]:
    raise_nofile(2 * plan.clients + 1024)
    toml = fanout.center_toml(plan.clients, plan.queue_size)
    with center(toml, setup.nodes, SECRET, API_KEY, redis=setup.redis) as c:
        figures = fanout.run_system("switchboard", plan, c, progress)
    cpu = figures["window_cpu_s"]
    units = figures["delivered_in_window"]
    return {
        "setup": setup.label,
        "nodes": setup.nodes,
        "redis": setup.redis,
        "units": units,
        "units_per_s": figures["delivered_per_s"],
        "cpu_s": cpu,
        "cpu_us_per_unit": round(1e6 * (cpu["nodes"] + cpu["redis"]) / units, 1) if units else None,
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "lost": figures["lost"],
        "errors": figures["errors"],
        "load_generator_cpu_pct": figures["load_generator_cpu_pct"],
    }


def routing_row(setup: Setup, plan: routing.Plan, progress: Progress) -> dict[str, Any]:
    with center(routing.center_toml(plan), setup.nodes, SECRET, API_KEY, redis=setup.redis) as c:
        report, _ = routing.run(plan, c, progress)
    cpu = report["work_cpu_s"]
    units = report["engagements"]["completed"]
    return {
        "setup": setup.label,
        "nodes": setup.nodes,
        "redis": setup.redis,
        "units": units,
        "units_per_s": report["throughput_per_s"],
        "cpu_s": cpu,
        "cpu_us_per_unit": round(1e6 * (cpu["nodes"] + cpu["redis"]) / units, 1) if units else None,
        "p50_ms": report["ring_latency"].get("p50_ms"),
        "p99_ms": report["ring_latency"].get("p99_ms"),
        "share_waiting": report["wait"]["share_waiting"],
        "erlang_c_p_wait": report["erlang_c"]["p_wait"],
        "errors": report["errors"],
        "load_generator_cpu_s": report["load_generator_cpu_s"],
    }


def run(
    work: str, rows: list[Setup], make_row: Callable[[Setup, Progress], dict[str, Any]], progress: Progress
) -> dict[str, Any]:
    """Each setup in turn on fresh processes; ratios against the first row (one node in memory)."""
    results = [make_row(setup, progress) for setup in rows]
    base = results[0]["cpu_us_per_unit"]
    for row in results:
        ours = row["cpu_us_per_unit"]
        row["cpu_vs_first"] = round(ours / base, 2) if base and ours else None
    return {"work": work, "rows": results}


def summary(report: dict[str, Any]) -> str:
    unit = "fragment delivered" if report["work"] == "fanout" else "engagement (whole life)"
    lines = [f"scale, {report['work']}: CPU of every node and Redis per {unit}"]
    for row in report["rows"]:
        cpu = row["cpu_s"]
        extra = f", waiting {row['share_waiting']:.1%}" if "share_waiting" in row else ""
        lines.append(
            f"  {row['setup']:<18} {row['units']:>7} units ({row['units_per_s']}/s)  nodes {cpu['nodes']:.2f} s"
            f" + Redis {cpu['redis']:.2f} s = {row['cpu_us_per_unit']} us/unit ({row['cpu_vs_first']}x)"
            f"  p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms{extra}; errors {row['errors'] or 'none'}"
        )
    return "\n".join(lines)
