"""The `switchboard` command: serve, token, schema, asyncapi, openapi.

Errors in the configuration are printed as one line naming the key, with exit status 2; the server
never starts on a config it does not fully understand.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from server import logs
from server.config import Config, ConfigError, exposure, load


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
