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
        f"routed {report['throughput_per_s']}/s; mean wait {w['mean_ms']} ms (ideal FIFO {w['ideal_fifo_mean_ms']} ms, "
        f"Erlang C {e['mean_wait_ms']} ms); waiting {w['share_waiting']:.1%} (Erlang C {e['p_wait']:.1%}); "
        f"CPU: server {report['server_cpu_s']} s, load generator {report['load_generator_cpu_s']} s; "
        f"errors: {', '.join(f'{k} x{n}' for k, n in report['errors'].items()) or 'none'}"
    )
    return report, {"ring latency": report["ring_latency"], "ring latency, no wait": report["ring_latency_not_waiting"]}


def cmd_fanout(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import fanout, routing

    peers = [p for p in dict.fromkeys(args.peer or []) if p != "none"]
    plan = fanout.Plan(
        clients=args.clients,
        duration=args.duration,
        nodes=args.nodes,
        workers=args.workers,
        publishers=args.publishers,
        streams=args.streams,
        window=args.window,
        rate=args.rate,
        size=args.size,
        queue_size=args.queue_size,
        peers=peers,
    )
    with progress_bar() as bar:
        results = fanout.run(plan, args.url, bar)
    samples = {name: figures.pop("_latencies_ms") for name, figures in results.items()}
    report: dict[str, Any] = {"plan": plan.__dict__, "nodes": args.nodes, "results": results}
    ours = results["switchboard"]
    for peer in peers:
        theirs = results[peer]
        ratio = ours["delivered_per_s"] / theirs["delivered_per_s"] if theirs["delivered_per_s"] else None
        report[f"delivered_vs_{peer}"] = round(ratio, 2) if ratio is not None else None
    if args.json:
        for name, latencies in samples.items():
            path = args.json.with_suffix(".png" if name == "switchboard" else f".{name}.png")
            title = f"delivery latency, {name}, {plan.clients} clients, {args.nodes} node(s)"
            routing.histogram_png(path, latencies, title)
    for name, figures in results.items():
        print(
            f"fanout {name}: {figures['delivered_per_s']}/s delivered, p50 {figures['p50_ms']} ms, "
            f"p99 {figures['p99_ms']} ms; {figures['delivered']}/{figures['acked']} delivered, lost {figures['lost']}; "
            f"CPU: server {figures['server_cpu_pct']}%, load generator {figures['load_generator_cpu_pct']}%"
        )
    return report, {f"{name} delivery latency": figures["latency"] for name, figures in results.items()}


def cmd_scale(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import fanout, routing, scale

    counts = [int(n) for n in args.nodes.split(",")]
    rows = scale.setups(counts, args.one_on_redis)
    if args.work == "fanout":
        plan = fanout.Plan(
            clients=args.clients,
            duration=args.duration,
            workers=args.workers,
            rate=args.rate,
            queue_size=args.queue_size,
            streams=args.streams,
        )

        def make_row(setup: scale.Setup, bar: Callable[[str, int, int], None]) -> dict[str, Any]:
            return scale.fanout_row(setup, plan, bar)

    else:
        rplan = routing.Plan(
            agents=args.agents, rate=args.rate, aht=args.aht, duration=args.duration, workers=args.workers
        )

        def make_row(setup: scale.Setup, bar: Callable[[str, int, int], None]) -> dict[str, Any]:
            return scale.routing_row(setup, rplan, bar)

    with progress_bar() as bar:
        report = scale.run(args.work, rows, make_row, bar)
    report["plan"] = vars(args) | {"json": str(args.json) if args.json else None, "func": None}
    print(scale.summary(report))
    latency = {row["setup"]: {"p50_ms": row["p50_ms"], "p99_ms": row["p99_ms"]} for row in report["rows"]}
    return report, latency


def cmd_connections(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import connections
    from loadtest.cluster import center

    plan = connections.Plan(
        clients=args.clients,
        nodes=args.nodes,
        workers=args.workers,
        concurrency=args.concurrency,
        hold=args.hold,
        compression=args.compression,
        queue_size=args.queue_size,
    )
    connections.raise_nofile(args.clients + 1024)  # before the nodes start: they inherit it
    toml = connections.center_toml(args.clients, queue_size=args.queue_size)
    secret, key = connections.SECRET, connections.API_KEY
    with center(toml, args.nodes, secret, key, args.url) as c, progress_bar() as bar:
        report = connections.run(plan, c, bar)
    report["nodes"] = args.nodes
    per = report["rss_per_connection_bytes"]
    print(
        f"connections: {report['connected']}/{args.clients} welcomed in {report['time_to_all_welcomed_s']} s "
        f"({report['connect_rate_per_s']}/s), {report['failed']} failed; "
        f"server RSS {per if per is None else round(per / 1024, 1)} KiB per connection; "
        f"idle server CPU {report['server_cpu_idle_pct']}%, load generator {report['load_generator_cpu_s']} s"
    )
    return report, {"connect (open -> welcome)": report["connect_latency"]}


def cmd_storm(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import connections, storm
    from loadtest.cluster import center

    plan = storm.Plan(
        clients=args.clients,
        nodes=args.nodes,
        workers=args.workers,
        missed=args.missed,
        timeout=args.timeout,
        queue_size=args.queue_size,
    )
    connections.raise_nofile(2 * args.clients + 1024)
    secret, key = connections.SECRET, connections.API_KEY
    with center(storm.center_toml(plan), args.nodes, secret, key, args.url) as c, progress_bar() as bar:
        report = storm.run(plan, c, bar)
    report["nodes"] = args.nodes
    print(
        f"storm: {report['resumed']}/{args.clients} resumed in {report['time_to_all_resumed_s']} s, all caught up in "
        f"{report['time_to_all_caught_up_s']} s; events lost {report['events_lost']}, duplicated "
        f"{report['events_duplicated']} (of {report['events_in_gaps']} missed); drops noticed in "
        f"{report['time_to_all_disconnected_s']} s"
    )
    return report, {"resume (open -> welcome)": report["resume_latency"], "caught up": report["caught_up_latency"]}


def cmd_chaos(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import chaos
    from loadtest.stats import percentiles

    plan = chaos.Plan(
        nodes=args.nodes,
        agents=args.agents,
        rate=args.rate,
        aht=args.aht,
        duration=args.duration,
        faults=tuple(f for f in args.faults.split(",") if f and f != "none"),
        fault_every=args.fault_every,
        seed=args.seed,
        workers=args.workers,
        settle=args.settle,
        kill_down_s=args.kill_down,
        redis_down_s=args.redis_down,
    )
    with progress_bar() as bar:
        report = chaos.run(plan, bar, args.workdir)
    print(chaos.summary(report))
    rows = {"time to offer": report["time_to_offer"]}
    for kind in report["faults_by_kind"]:
        times = [f["recovery_s"] for f in report["faults"] if f["kind"] == kind and f["recovery_s"] is not None]
        rows[f"recovery, {kind}"] = percentiles(times)
    return report, rows


def cmd_simulate(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import simulate
    from loadtest.stats import percentiles

    plan = simulate.Plan(
        engagements=args.engagements, agents=args.agents, aht=args.aht, wrap_up=args.wrap_up, rounds=args.rounds
    )
    report = simulate.run(plan)
    print(
        f"simulate: {plan.engagements} engagements, {plan.agents} agents, {report['offered_load_erlangs']} erlangs: "
        f"best of {plan.rounds} {min(report['wall_s'])} s ({report['engagements_per_s']} engagements/s, "
        f"{report['transactions_per_s']} transactions/s); waits equal the FIFO replay: "
        f"{report['waits_equal_fifo_replay']}; waited {report['p_wait']:.1%} (Erlang C {report['erlang_c_p_wait']:.1%})"
    )
    return report, {"a day, simulated": percentiles(report["wall_s"])}


def cmd_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    from loadtest import connections, fanout, routing, storm

    if args.which == "routing":
        print(routing.center_toml(routing.Plan(agents=args.agents, rate=0, aht=1, duration=0, manual=args.manual)))
    elif args.which == "fanout":
        print(fanout.center_toml(args.agents, args.queue_size))
    elif args.which == "connections":
        print(connections.center_toml(args.agents, queue_size=args.queue_size))
    else:
        print(storm.center_toml(storm.Plan(clients=args.agents, missed=args.missed, queue_size=args.queue_size)))
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

    fan = sub.add_parser("fanout", help="transcript fragments streamed to agents; optionally vs python-socketio")
    fan.add_argument("--clients", type=int, default=1000, help="agents, each with one active engagement")
    fan.add_argument("--duration", type=float, default=10.0, help="seconds of streaming (the measurement window)")
    fan.add_argument("--nodes", type=int, default=1)
    fan.add_argument(
        "--peer",
        action="append",
        choices=["socketio", "websockets", "none"],
        help="also run the same workload on python-socketio (AsyncRedisManager) or a bare websockets server "
        "(repeatable)",
    )
    fan.add_argument("--workers", type=int, default=2, help="load generator processes for the agents")
    fan.add_argument("--publishers", type=int, default=1, help="load generator processes publishing")
    fan.add_argument("--streams", type=int, default=4, help="publishing sockets per publisher and node")
    fan.add_argument("--window", type=int, default=32, help="unanswered frames per publishing socket")
    fan.add_argument("--rate", type=float, default=0.0, help="fragments per second in all (0: as fast as answered)")
    fan.add_argument("--size", type=int, default=200, help="bytes of text per fragment")
    fan.add_argument("--url", help="use this server (running `python -m loadtest config fanout`)")
    fan.set_defaults(func=cmd_fanout)

    conns = sub.add_parser("connections", help="C idle agent sockets: connect rate, server RSS per connection")
    conns.add_argument("--clients", type=int, default=1000)
    conns.add_argument("--nodes", type=int, default=1)
    conns.add_argument("--workers", type=int, default=2, help="load generator processes")
    conns.add_argument("--concurrency", type=int, default=256, help="handshakes in flight, all workers together")
    conns.add_argument("--hold", type=float, default=2.0, help="seconds to stay idle (server CPU while idle)")
    conns.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="offer permessage-deflate, as browsers and the client library do (default), or not",
    )
    conns.add_argument("--url", help="use this server (running `python -m loadtest config connections`)")
    conns.set_defaults(func=cmd_connections)

    storm = sub.add_parser("storm", help="every agent drops and reconnects at once, resuming; nothing lost")
    storm.add_argument("--clients", type=int, default=1000)
    storm.add_argument("--nodes", type=int, default=1, help="with several, agents come back on the next node")
    storm.add_argument("--workers", type=int, default=2, help="load generator processes")
    storm.add_argument("--missed", type=int, default=3, help="status events per agent while they are away")
    storm.add_argument("--timeout", type=float, default=120.0, help="seconds each phase may take at most")
    storm.add_argument("--url", help="use this server (running `python -m loadtest config storm`)")
    storm.set_defaults(func=cmd_storm)

    chaos = sub.add_parser("chaos", help="nodes and Redis killed, restarted and frozen under load; invariants checked")
    chaos.add_argument("--nodes", type=int, default=3)
    chaos.add_argument("--agents", type=int, default=24)
    chaos.add_argument("--rate", type=float, default=4.0, help="arrivals per second")
    chaos.add_argument("--aht", type=float, default=2.0, help="mean handle time, seconds")
    chaos.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    chaos.add_argument("--faults", default="kill,redis,pause", help="kinds of fault, comma-separated (or none)")
    chaos.add_argument("--fault-every", type=float, default=10.0, help="seconds between faults (at least one each)")
    chaos.add_argument("--seed", type=int, default=1, help="draws the arrivals, the agents' choices and the faults")
    chaos.add_argument("--workers", type=int, default=2, help="load generator processes for the agents")
    chaos.add_argument("--settle", type=float, default=60.0, help="seconds the cluster may take to finish the work")
    chaos.add_argument("--kill-down", type=float, default=2.0, help="seconds a killed node stays down")
    chaos.add_argument("--redis-down", type=float, default=1.0, help="seconds Redis stays down")
    chaos.add_argument("--workdir", type=Path, help="keep the config, node logs and Redis files here")
    chaos.set_defaults(func=cmd_chaos)

    scale = sub.add_parser("scale", help="CPU per unit of work of every node and Redis, for 1, 2, 3... nodes")
    scale.add_argument("work", choices=["fanout", "routing"])
    scale.add_argument("--nodes", default="1,2,3", help="node counts, comma-separated (1: in memory)")
    scale.add_argument("--one-on-redis", action="store_true", help="also one node on Redis")
    scale.add_argument("--duration", type=float, default=15.0, help="seconds of offered load per row")
    scale.add_argument("--rate", type=float, default=0.0, help="fragments (fanout) or arrivals (routing) per second")
    scale.add_argument("--clients", type=int, default=200, help="fanout: agents, each with one active call")
    scale.add_argument("--streams", type=int, default=4, help="fanout: publishing sockets per node")
    scale.add_argument("--queue-size", type=int, default=100, help="fanout: agents per queue")
    scale.add_argument("--agents", type=int, default=500, help="routing: agents in the one queue")
    scale.add_argument("--aht", type=float, default=2.0, help="routing: mean handle time, seconds")
    scale.add_argument("--workers", type=int, default=2, help="load generator processes for the agents")
    scale.set_defaults(func=cmd_scale)

    sim = sub.add_parser("simulate", help="a day of traffic replayed through the core on a virtual clock")
    sim.add_argument("--engagements", type=int, default=50_000, help="arrivals, spread over 24 h")
    sim.add_argument("--agents", type=int, default=200)
    sim.add_argument("--aht", type=float, default=300.0, help="mean talk time, seconds")
    sim.add_argument("--wrap-up", type=float, default=20.0, help="mean wrap-up, seconds")
    sim.add_argument("--rounds", type=int, default=3, help="times the day is simulated (figures: each run's time)")
    sim.set_defaults(func=cmd_simulate)

    config = sub.add_parser("config", help="print a scenario's server configuration (for --url)")
    config.add_argument("which", choices=["routing", "fanout", "connections", "storm"])
    config.add_argument("--agents", type=int, default=100)
    config.add_argument("--manual", action="store_true")
    config.add_argument("--missed", type=int, default=3, help="storm: the events missed per agent")
    config.add_argument("--queue-size", type=int, default=100, help="fanout, connections, storm: agents per queue")
    config.set_defaults(func=cmd_config)

    for scenario in (fan, conns, storm):
        scenario.add_argument(
            "--queue-size", type=int, default=100, help="agents per queue (routing reads every member of a queue)"
        )
    for scenario in (search, routing, fan, conns, storm, chaos, scale, sim):
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
