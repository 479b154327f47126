"""The `switchboard` command: serve, token, demo, agent, simulate, schema, asyncapi, openapi.

Errors in the configuration are printed as one line naming the key, with exit status 2; the server
never starts on a config it does not fully understand.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from server import logs
from server.config import Config, ConfigError, exposure, load

QUEUE_TARGET = -1.0
"""`--target-service-level` given without a share: each queue's own `service_level_target`."""


def _config(path: str | None) -> Config:
    try:
        return load(path)
    except ConfigError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def refuse_exposure(config: Config, host: str, demo: bool) -> bool:
    """Whether to refuse (saying why on stderr) listening where other machines can reach a server that
    still has the demo's public credentials, or hands out the demo's sign-in list."""
    problems, _ = exposure(config, host, demo)
    for problem in problems:
        print(f"switchboard: {problem}", file=sys.stderr)
    return bool(problems)


def warn_of_exposure(config: Config, host: str, demo: bool) -> None:
    """On loopback with the demo's credentials: one warning line, in the log's format."""
    _, warning = exposure(config, host, demo)
    if warning:
        logging.getLogger("switchboard").warning(warning)


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.serving import serve

    config = _config(args.config)
    if refuse_exposure(config, args.host, args.demo):
        return 2
    app = create_app(config, redis_url=args.redis, redis_prefix=args.redis_prefix, demo=args.demo)
    logs.configure(args.log_level, args.log_format, app.state.node.node_id)
    warn_of_exposure(config, args.host, args.demo)

    async def listening(host: str, port: int) -> None:
        print(f"Switchboard listening on http://{host}:{port}", flush=True)
        print(f"  agent socket: ws://{host}:{port}/v1/agent", flush=True)
        if args.redis:
            print(f"  cluster node {app.state.node.node_id} on {args.redis}", flush=True)
        else:
            print(
                "  store: in memory: every engagement is lost when this process stops (use --redis in production)",
                flush=True,
            )
        if args.config is None:
            print("  demo configuration: agents alice, bob, carol, dan; supervisor sam", flush=True)
            print(f"  ingest key: {config.server.api_keys[0]}", flush=True)
            print("  token: switchboard token alice", flush=True)
        if args.demo:
            print("  demo sign-in: the desktop lists every agent and signs them in without a token", flush=True)

    serve(app, args.host, args.port, args.log_level, listening)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from server.auth import issue

    config = _config(args.config)
    known = {"agent": {a.id for a in config.agents}, "supervisor": {s.id for s in config.supervisors}}[args.role]
    if args.subject not in known:
        print(f"switchboard: no {args.role} {args.subject!r} in the configuration", file=sys.stderr)
        return 2
    ttl = args.ttl if args.ttl is not None else config.server.token_ttl_s
    print(issue(config.server.secret or "", args.subject, args.role, ttl))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from clients.terminal import run

    return run(args.url, args.token)


def cmd_demo(args: argparse.Namespace) -> int:
    from server.demo import run

    return run(args)


def _staffing(text: str) -> tuple[str, int]:
    queue, sep, n = text.rpartition("=")
    if not sep or not queue or not n.isdigit():
        raise argparse.ArgumentTypeError(f"expected QUEUE=N (a number of agents), got {text!r}")
    return queue, int(n)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1 (0.8 for 80%), got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def cmd_simulate(args: argparse.Namespace) -> int:
    from server import simulate, trace
    from server.config import decode

    try:
        if args.export_trace:
            return _export_trace(args)
        config = None
        if args.config:
            try:
                text = Path(args.config).read_bytes()
            except OSError as exc:
                raise ConfigError(f"{args.config}: cannot read: {exc.strerror}") from None
            config = decode(text, args.config)  # a plan needs no secrets: `load` would ask for them
        lines = trace.read(args.trace, {q.id for q in config.queues} if config else None)
        center = config or simulate.trace_center(lines)
        staffing = dict(args.agents)
        found = None
        if args.target_service_level is not None:
            found = []
            for queue in dict.fromkeys(line.queue for line in lines):
                mine = [line for line in lines if line.queue == queue]
                cfg = next(q for q in center.queues if q.id == queue)
                target = (
                    cfg.service_level_target if args.target_service_level == QUEUE_TARGET else args.target_service_level
                )
                result = simulate.staff(center, mine, queue, target, args.accept_s)
                found.append(result)
                staffing[queue] = result.agents if result.agents is not None else len(mine)
        planned = simulate.staffed(center, staffing) if staffing else center
        report = simulate.simulate(planned, lines, args.accept_s, source=args.trace)
        report.staffing = found
    except (ConfigError, trace.TraceError, simulate.SimulationError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    print(simulate.render(report), end="")
    if args.json:
        Path(args.json).write_bytes(simulate.encode_report(report))
    return 0


def _export_trace(args: argparse.Namespace) -> int:
    from server import trace

    if args.redis:
        records: Sequence[trace.Recorded] = trace.from_redis(args.redis, args.redis_prefix)
    elif args.engagements:
        records = trace.from_file(args.engagements)
    else:
        print("switchboard: --export-trace reads --redis URL or --engagements FILE", file=sys.stderr)
        return 2
    exported = trace.export(records)
    if args.export_trace == "-":
        sys.stdout.buffer.writelines(trace.write(exported.lines))
    else:
        with open(args.export_trace, "wb") as out:
            out.writelines(trace.write(exported.lines))
    print(
        f"switchboard: {len(exported.lines)} engagements written; left out: {exported.unfinished} not over yet, "
        f"{exported.withdrawn} withdrawn before an answer",
        file=sys.stderr,
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from protocol.schema import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from protocol.asyncapi import asyncapi

    print(json.dumps(asyncapi(), indent=2, sort_keys=True))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from server.openapi import openapi

    print(json.dumps(openapi(), indent=2, sort_keys=True))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="Real-time routing server for contact centers.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run a node (the built-in demo configuration, in memory, by default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed at start)")
    serve.add_argument("--config", help="TOML configuration file (default: the built-in demo)")
    serve.add_argument("--redis", metavar="URL", help="share queues with other nodes through this Redis")
    serve.add_argument("--redis-prefix", default="sb", help="key prefix in Redis (one per contact center)")
    serve.add_argument(
        "--demo", action="store_true", help="serve the demo sign-in list (a token for everyone): this machine only"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=["text", "json"], help="json: one object per line")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="print a signed token for an agent or supervisor")
    token.add_argument("subject", metavar="AGENT_ID")
    token.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    token.add_argument("--ttl", type=float, help="lifetime in seconds (default: server.token_ttl_s)")
    token.add_argument("--config", help="TOML configuration file (default: the built-in demo)")
    token.set_defaults(func=cmd_token)

    agent = sub.add_parser("agent", help="the terminal agent desktop")
    agent.add_argument("--url", default="ws://127.0.0.1:8000", help="the server (ws:// or wss://)")
    agent.add_argument("--token", required=True, help="the agent's token (switchboard token AGENT_ID)")
    agent.set_defaults(func=cmd_agent)

    demo = sub.add_parser("demo", help="serve the demo with simulated consumers and colleagues")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--rate", type=float, default=0.2, help="new consumers per second, all queues together")
    demo.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    demo.add_argument("--log-format", default="text", choices=["text", "json"], help="json: one object per line")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser(
        "simulate",
        help="replay a traffic trace through the routing core on proposed settings; compare with the recorded "
        "figures and Erlang C",
        description="Replay a trace (JSON Lines: queue, arrival_s, handle_s, patience_s?, wrap_up_s?) through the "
        "routing core on a virtual clock and print each queue's figures beside the recorded ones and Erlang C's. "
        "See docs/analytics.md.",
    )
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", metavar="FILE", help="the trace to replay")
    source.add_argument(
        "--export-trace", metavar="OUT", help="write a trace of the recorded engagements to OUT ('-': stdout)"
    )
    sim.add_argument(
        "--config", help="TOML configuration (default: one auto-accept voice queue per queue in the trace)"
    )
    sim.add_argument(
        "--agents",
        action="append",
        type=_staffing,
        default=[],
        metavar="QUEUE=N",
        help="serve QUEUE with N generated agents of its own instead of its configured ones (repeatable)",
    )
    sim.add_argument("--accept-s", type=_seconds, default=0.0, help="seconds a simulated agent takes to accept a ring")
    sim.add_argument(
        "--target-service-level",
        type=_share,
        nargs="?",
        const=QUEUE_TARGET,
        metavar="SHARE",
        help="find the smallest number of agents per queue meeting this service level (0.8), or each queue's "
        "service_level_target when no share is given, and report the center staffed so",
    )
    sim.add_argument("--json", metavar="OUT", help="write the whole report, with 15-minute intervals, as JSON")
    sim.add_argument("--redis", metavar="URL", help="--export-trace: read the engagements from this Redis")
    sim.add_argument("--redis-prefix", default="sb", help="--export-trace: the store's key prefix in Redis")
    sim.add_argument(
        "--engagements",
        metavar="FILE",
        help="--export-trace: read the engagements from FILE, one `GET /v1/engagements/{id}` object per line",
    )
    sim.set_defaults(func=cmd_simulate)

    schema = sub.add_parser("schema", help="print the protocol's JSON Schema")
    schema.set_defaults(func=cmd_schema)

    asyncapi = sub.add_parser("asyncapi", help="print the WebSocket protocol's AsyncAPI 3 document")
    asyncapi.set_defaults(func=cmd_asyncapi)

    openapi = sub.add_parser("openapi", help="print the HTTP API's OpenAPI 3.1 document")
    openapi.set_defaults(func=cmd_openapi)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
