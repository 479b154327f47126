"""`python -m loadtest SCENARIO [options] --json FILE`: run a scenario, print a table, save the figures.

Scenarios start their own nodes (and a private Redis when `--nodes` > 1) unless given `--url`; then
the server must run the scenario's configuration (`python -m loadtest config routing --agents N`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loadtest.stats import table


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per phase (arrivals, draining...), on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=max(total, done))

        yield update


def cmd_search(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import search as scenario

    result = scenario.run(args.fragments, args.rounds)
    ratio = result["function"]["naive_rare"]["p50_ms"] / result["function"]["rare"]["p50_ms"]
    result["ratio_rare_vs_naive_p50"] = round(ratio, 1)
    print(f"search over {args.fragments} fragments; rare-word p50 {ratio:.0f}x faster than the naive scan")
    rows = {
        "function, first search": result["function"]["cold"],
        "function, rare word": result["function"]["rare"],
        "function, common word": result["function"]["common"],
        "naive scan (peer), rare": result["function"]["naive_rare"],
        "request, rare word": result["socket"]["rare"],
        "request, common word": result["socket"]["common"],
    }
    return result, rows


def cmd_routing(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import routing
    from loadtest.cluster import center

    plan = routing.Plan(
        agents=args.agents,
        rate=args.rate,
        aht=args.aht,
        duration=args.duration,
        manual=args.manual,
        workers=args.workers,
    )
    secret = "loadtest-secret-0123456789-0123456789-abc"
    with center(routing.center_toml(plan), args.nodes, secret, "loadtest-key", args.url) as c, progress_bar() as bar:
        cpu_before = c.server_cpu_s()
        report, outcome = routing.run(plan, c, bar)
        report["server_cpu_s"] = round(c.server_cpu_s() - cpu_before, 2)
    report["nodes"] = args.nodes
    if args.records:
        routing.write_records(args.records, outcome)
    if args.json:
        latencies = [(outcome.offered[e] - t) * 1000 for e, t in outcome.created.items() if e in outcome.offered]
        mode = "manual ring" if plan.manual else "auto-accept"
        title = f"ring latency, {plan.rate:g}/s, {plan.agents} agents, {args.nodes} node(s), {mode}"
        routing.histogram_png(args.json.with_suffix(".png"), latencies, title)
    e, w = report["erlang_c"], report["wait"]
    print(
        f"routing: {report['engagements']['completed']}/{report['engagements']['created']} completed, "
        f"{report['throughput_per_s']}/s; mean wait {w['mean_ms']} ms (ideal FIFO {w['ideal_fifo_mean_ms']} ms, "
        f"Erlang C {e['mean_wait_ms']} ms); waiting {w['share_waiting']:.1%} (Erlang C {e['p_wait']:.1%}); "
        f"CPU: server {report['server_cpu_s']} s, load generator {report['load_generator_cpu_s']} s"
    )
    return report, {"ring latency": report["ring_latency"], "ring latency, no wait": report["ring_latency_not_waiting"]}


def cmd_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import routing

    print(routing.center_toml(routing.Plan(agents=args.agents, rate=0, aht=1, duration=0, manual=args.manual)))
    return {}, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description="Switchboard load tests and benchmarks")
    sub = parser.add_subparsers(dest="scenario", required=True)

    search = sub.add_parser("search", help="transcript search on a long call")
    search.add_argument("--fragments", type=int, default=10_000)
    search.add_argument("--rounds", type=int, default=200)
    search.set_defaults(func=cmd_search)

    routing = sub.add_parser("routing", help="agents in one queue, Poisson arrivals, exponential handle times")
    routing.add_argument("--agents", type=int, default=100)
    routing.add_argument("--rate", type=float, default=20.0, help="arrivals per second")
    routing.add_argument("--aht", type=float, default=2.0, help="mean handle time, seconds")
    routing.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    routing.add_argument("--nodes", type=int, default=1)
    routing.add_argument("--manual", action="store_true", help="ring and accept instead of auto-accept")
    routing.add_argument("--workers", type=int, default=2, help="load generator processes for the agents")
    routing.add_argument("--url", help="use this server (running `python -m loadtest config routing`)")
    routing.add_argument("--records", type=Path, help="one JSON line per engagement: created, offered, freed")
    routing.set_defaults(func=cmd_routing)

    config = sub.add_parser("config", help="print a scenario's server configuration (for --url)")
    config.add_argument("which", choices=["routing"])
    config.add_argument("--agents", type=int, default=100)
    config.add_argument("--manual", action="store_true")
    config.set_defaults(func=cmd_config)

    for scenario in (search, routing):
        scenario.add_argument("--json", type=Path, help="write the figures here (and a histogram PNG beside)")
    args = parser.parse_args(argv)
    result, rows = args.func(args)
    if args.scenario == "config":
        return 0
    result["machine"] = machine()
    result["command"] = "python -m loadtest " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
