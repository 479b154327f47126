"""`connections`: C idle agent sockets; connect rate and the server's memory per connection.

Agents connect with raw `websockets` clients (hello with a token, wait for `welcome`, then stay
idle), spread over several worker processes so the load generator is not what limits the rate.
The server's RSS is read before the first connection and once all are welcomed; the difference
divided by C is the memory per connection. The connect rate is C over the time from the start
signal to the last `welcome`.

Also home of the raw agent-socket helpers the other scenarios share (`open_agent`, `request`,
`raise_nofile`): with thousands of sockets per process, the client library's per-connection
machinery (a reader task, an event queue, futures per request) would be the bottleneck.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Literal

import msgspec
from websockets.asyncio.client import ClientConnection, connect

from loadtest.cluster import Center
from loadtest.stats import percentiles

SECRET = "loadtest-secret-0123456789-0123456789-abc"
API_KEY = "loadtest-key"
SUBPROTOCOL = "switchboard.v1.json"
Compression = Literal["deflate", "none"]


# --- shared raw-socket helpers -------------------------------------------------------------------


def agent_ids(n: int) -> list[str]:
    return [f"a{i:05d}" for i in range(n)]


def raise_nofile(need: int) -> int:
    """Raise this process's open-file limit to at least `need` (as far as the hard limit allows, or
    beyond it when running as root). Children (and `switchboard serve` nodes) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError):
            need = hard
    if need > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return need
    return soft


class Incoming(msgspec.Struct):
    """The fields of a server frame the load generator looks at (others are skipped by the decoder)."""

    type: str
    re: int | str | None = None
    seq: int = 0
    resumed: bool = False
    epoch: str = ""
    code: str = ""


decode_incoming = msgspec.json.Decoder(Incoming).decode
encode = msgspec.json.Encoder().encode


async def open_agent(
    ws_url: str,
    token: str,
    *,
    resume_from: int | None = None,
    epoch: str | None = None,
    compression: Compression = "none",
    path: str = "/v1/agent",
) -> tuple[ClientConnection, Incoming]:
    """Open an agent (or supervisor) socket and say hello; returns the socket and its `welcome`."""
    ws = await connect(
        ws_url + path,
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        compression="deflate" if compression == "deflate" else None,
        max_size=None,
        ping_interval=None,  # the server pings; an idle client should not add traffic of its own
        open_timeout=120,
        close_timeout=1,
    )
    hello: dict[str, Any] = {"type": "hello", "id": 1, "token": token}
    if resume_from is not None:
        hello["resume_from"] = resume_from
        if epoch:
            hello["epoch"] = epoch
    try:
        await ws.send(encode(hello).decode())
        welcome = decode_incoming(await ws.recv())
    except BaseException:
        ws.transport.abort()
        raise
    if welcome.type != "welcome":
        ws.transport.abort()
        raise RuntimeError(f"expected welcome, got {welcome.type} {welcome.code}")
    return ws, welcome


async def request(ws: ClientConnection, frame: dict[str, Any], on_event: Callable[[Incoming], None]) -> Incoming:
    """Send a frame with `id` and read until its reply; events read meanwhile go to `on_event`."""
    await ws.send(encode(frame).decode())
    while True:
        incoming = decode_incoming(await ws.recv())
        if incoming.re is not None and incoming.re == frame["id"]:
            if incoming.type == "error":
                raise RuntimeError(f"{frame['type']} refused: {incoming.code}")
            return incoming
        on_event(incoming)


def issue_tokens(ids: list[str], role: str = "agent") -> list[str]:
    from server.auth import issue

    return [issue(SECRET, agent, role, 24 * 3600) for agent in ids]  # type: ignore[arg-type]


# --- the scenario ----------------------------------------------------------------------------------


@dataclass
class Plan:
    clients: int
    nodes: int = 1
    workers: int = 2
    concurrency: int = 256
    hold: float = 2.0
    compression: Compression = "deflate"
    queue_size: int = 100


def server_limits(sockets: int) -> list[str]:
    """`[server]` lines lifting the per-socket frame rate limit (a publisher's ingest socket and a
    supervisor's bulk changes send far more than a person's 50 frames a second) and making room for
    `sockets` connections, for the server versions that have those settings."""
    from server.config import ServerCfg

    fields = set(ServerCfg.__struct_fields__)
    lines = []
    if "rate_per_s" in fields:
        lines += ["rate_per_s = 1000000.0", "rate_burst = 1000000"]
    if "max_connections" in fields:
        lines.append(f"max_connections = {max(20_000, sockets + 1000)}")
    return lines


def queue_of(index: int, queue_size: int) -> str:
    """Agents are spread over queues of `queue_size` members: routing and (with Redis) every read of a
    queue touch all of its members, so one queue of 10,000 would make setup quadratic (see fanout)."""
    return f"q{index // max(1, queue_size):04d}"


def center_toml(
    agents: int,
    *,
    queue_size: int = 100,
    event_log_size: int = 64,
    outbound_queue: int = 1000,
    queue_lines: tuple[str, ...] = ('channel = "voice"',),
    extra: str = "",
) -> str:
    """`agents` agents in voice queues of `queue_size` (and whatever `extra` adds: supervisors)."""
    lines = [
        "[server]",
        f'secret = "{SECRET}"',
        f'api_keys = ["{API_KEY}"]',
        "grace_s = 300",
        "hello_timeout_s = 120",
        f"event_log_size = {event_log_size}",
        f"outbound_queue = {outbound_queue}",
        *server_limits(agents),
        "",
    ]
    for queue in dict.fromkeys(queue_of(i, queue_size) for i in range(agents)):
        lines += ["[[queues]]", f'id = "{queue}"', *queue_lines, ""]
    lines.append(extra)
    for i, agent in enumerate(agent_ids(agents)):
        lines += ["[[agents]]", f'id = "{agent}"', f'queues = ["{queue_of(i, queue_size)}"]', ""]
    return "\n".join(lines)


def worker(
    ws_urls: list[str],
    indices: list[int],
    plan: Plan,
    ready: MpEvent,
    go: MpEvent,
    start_at: Any,
    welcomed: Any,
    failed: Any,
    stop: MpEvent,
    results: mp.Queue[Any],
) -> None:
    import uvloop

    raise_nofile(len(indices) + 256)
    uvloop.run(_worker(ws_urls, indices, plan, ready, go, start_at, welcomed, failed, stop, results))


async def _worker(
    ws_urls: list[str],
    indices: list[int],
    plan: Plan,
    ready: MpEvent,
    go: MpEvent,
    start_at: Any,
    welcomed: Any,
    failed: Any,
    stop: MpEvent,
    results: mp.Queue[Any],
) -> None:
    ids = agent_ids(max(indices) + 1)
    tokens = dict(zip(indices, issue_tokens([ids[i] for i in indices]), strict=True))
    loop = asyncio.get_running_loop()
    ready.set()
    await loop.run_in_executor(None, go.wait)
    delay = start_at.value - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    gate = asyncio.Semaphore(max(1, plan.concurrency))
    sockets: list[ClientConnection] = []
    latencies: list[float] = []
    finished: list[float] = []
    failures: dict[str, int] = {}

    async def one(i: int) -> None:
        async with gate:
            began = time.time()
            try:
                ws, _ = await open_agent(ws_urls[i % len(ws_urls)], tokens[i], compression=plan.compression)
            except Exception as exc:
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
                failed.value += 1
                return
            now = time.time()
        sockets.append(ws)
        latencies.append(now - began)
        finished.append(now)
        welcomed.value += 1

    await asyncio.gather(*(one(i) for i in indices))
    await loop.run_in_executor(None, stop.wait)
    open_at_end = sum(1 for ws in sockets if ws.close_code is None)
    for ws in sockets:
        ws.transport.abort()
    cpu = os.times()
    results.put(
        {
            "latencies": latencies,
            "last_welcome": max(finished, default=0.0),
            "failures": failures,
            "open_at_end": open_at_end,
            "cpu_s": cpu.user + cpu.system,
        }
    )


def run(plan: Plan, center: Center, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    """Open `plan.clients` idle agent sockets against `center` (serving `center_toml(plan.clients)`)."""
    ctx = mp.get_context("spawn")
    results: mp.Queue[Any] = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    start_at = ctx.Value("d", 0.0, lock=False)
    workers, readies, counters, failed_counters = [], [], [], []
    per_worker = max(1, plan.concurrency // max(1, plan.workers))
    share_plan = Plan(**{**plan.__dict__, "concurrency": per_worker})
    for w in range(plan.workers):
        indices = list(range(w, plan.clients, plan.workers))
        if not indices:
            continue
        ready = ctx.Event()
        welcomed, failed = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)
        args = (center.ws_urls, indices, share_plan, ready, go, start_at, welcomed, failed, stop, results)
        process = ctx.Process(target=worker, args=args, daemon=True)
        process.start()
        workers.append(process)
        readies.append(ready)
        counters.append(welcomed)
        failed_counters.append(failed)
    for i, ready in enumerate(readies):
        if not ready.wait(120):
            raise RuntimeError(f"connection worker {i} did not start")
    time.sleep(0.5)  # let the nodes settle before the baseline
    rss_before = center.server_rss_bytes()
    cpu_before = center.server_cpu_s()
    start_at.value = time.time() + 0.2
    go.set()
    deadline = time.time() + 60 + plan.clients / 50
    done = 0
    while time.time() < deadline:
        done = sum(c.value for c in counters)
        progress("connect", done, plan.clients)
        given_up = sum(c.value for c in failed_counters)
        if done + given_up >= plan.clients or not any(p.is_alive() for p in workers):
            break
        time.sleep(0.1)
    connect_cpu = center.server_cpu_s() - cpu_before
    time.sleep(0.5)  # the last sign-ins' status events are written; let the heap settle
    rss_after = center.server_rss_bytes()
    idle_cpu_before = center.server_cpu_s()
    held_from = time.time()
    while time.time() - held_from < plan.hold:
        progress("idle", round(time.time() - held_from), round(plan.hold))
        time.sleep(min(0.2, plan.hold))
    idle_cpu = center.server_cpu_s() - idle_cpu_before
    held = time.time() - held_from
    stop.set()
    parts = [results.get(timeout=60) for _ in workers]
    for process in workers:
        process.join(30)
    latencies = [x for part in parts for x in part["latencies"]]
    failures: dict[str, int] = {}
    for part in parts:
        for name, count in part["failures"].items():
            failures[name] = failures.get(name, 0) + count
    connected = len(latencies)
    span = max((p["last_welcome"] for p in parts), default=0.0) - start_at.value
    me = os.times()
    measured = bool(center.pids)
    return {
        "plan": plan.__dict__,
        "connected": connected,
        "failed": sum(failures.values()),
        "failures": failures,
        "open_at_end": sum(p["open_at_end"] for p in parts),
        "time_to_all_welcomed_s": round(span, 3),
        "connect_rate_per_s": round(connected / span, 1) if span > 0 else 0.0,
        "connect_latency": percentiles(latencies),
        "server_rss_before_bytes": rss_before if measured else None,
        "server_rss_after_bytes": rss_after if measured else None,
        "rss_per_connection_bytes": round((rss_after - rss_before) / connected) if measured and connected else None,
        "server_cpu_connect_s": round(connect_cpu, 2),
        "server_cpu_idle_pct": round(100 * idle_cpu / held, 1) if held > 0 else 0.0,
        "load_generator_cpu_s": round(sum(p["cpu_s"] for p in parts) + me.user + me.system, 2),
    }
