"""`fanout`: transcript fragments streamed to C agents, each handling one active engagement.

Switchboard: an auto-accept voice queue with transcription and C agents; the agents connect (raw
sockets, in worker processes, spread over the nodes) and go ready, C engagements are created (each
lands active on one agent), then publisher processes stream fragments for `duration` seconds over
`/v1/ingest` sockets (`transcript {id, engagement, fragments: [{speaker, text, final}]}`, ~200 bytes
of text that starts with the send time), each socket pipelining up to `window` unanswered frames and
going round its own share of the engagements. Agents note when each `transcript` event arrives:
latency = arrival - send time; delivered/s = arrivals within the measurement window / duration.

Peers, in the same run, with the same C, duration, payload size, generator processes and
measurement (see loadtest/peers.py): `socketio` (python-socketio, one room per client, the
publisher's `publish` event re-emitted to the room; AsyncRedisManager across K processes) and
`websockets` (a bare forwarding server, the floor; K independent processes, each publisher socket
addressing the clients of the process it is connected to).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx
import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from loadtest import connections
from loadtest.cluster import Center
from loadtest.connections import (
    API_KEY,
    SECRET,
    SUBPROTOCOL,
    agent_ids,
    decode_incoming,
    issue_tokens,
    open_agent,
    queue_of,
    raise_nofile,
    request,
)
from loadtest.stats import percentiles

SYSTEMS = ("switchboard", "socketio", "websockets")
FILLER = (
    "yes I would like to change the delivery address of my last order please because I moved last week "
    "and the parcel is still going to the old flat on the other side of town which is not ideal at all "
) * 4


@dataclass
class Plan:
    clients: int
    duration: float
    nodes: int = 1
    workers: int = 2
    publishers: int = 1
    streams: int = 4
    window: int = 32
    rate: float = 0.0
    size: int = 200
    queue_size: int = 100
    peers: list[str] = field(default_factory=list)


def center_toml(clients: int, queue_size: int = 100) -> str:
    """Auto-accept voice queues with transcription, `queue_size` agents each (one queue of thousands
    would make creating the engagements quadratic: see `connections.queue_of`)."""
    return connections.center_toml(
        clients,
        queue_size=queue_size,
        queue_lines=('channel = "voice"', 'acceptance = "auto"', "transcription = true"),
    )


def text_for(size: int) -> str:
    """A fragment's text: the send time, then filler up to `size` bytes."""
    return f"{time.time():.6f} {FILLER[: max(0, size - 18)]}"


def sent_at(text: str) -> float:
    return float(text[: text.index(" ")])


# --- the agents, in worker processes ---------------------------------------------------------------


@dataclass
class Window:
    """The measurement window (Unix times) and the signals around it, shared by every process."""

    go: MpEvent
    stop: MpEvent
    start_at: Any
    end_at: Any


class _Text(msgspec.Struct):
    text: str


class _Transcript(msgspec.Struct):
    type: str
    fragments: list[_Text] = msgspec.field(default_factory=list)


_decode_transcript = msgspec.json.Decoder(_Transcript).decode


class Tally:
    """One process's arrivals: every latency, and the count inside the window."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.latencies = array.array("d")
        self.total = 0
        self.in_window = 0
        self.start = 0.0
        self.end = 0.0

    def arrived(self, now: float, text: str) -> None:
        try:
            sent = sent_at(text)
        except ValueError:
            return
        self.latencies.append(now - sent)
        self.total += 1
        if self.start <= now <= self.end:
            self.in_window += 1


class CpuWindow:
    """CPU seconds this process spends inside the measurement window."""

    def __init__(self) -> None:
        self.used = 0.0

    async def measure(self, window: Window) -> None:
        await asyncio.sleep(max(0.0, window.start_at.value - time.time()))
        first = os.times()
        await asyncio.sleep(max(0.0, window.end_at.value - time.time()))
        last = os.times()
        self.used = (last.user + last.system) - (first.user + first.system)


def agent_worker(
    kind: str,
    urls: list[str],
    indices: list[int],
    window: Window,
    ready: MpEvent,
    connected: Any,
    received: Any,
    results: mp.Queue[Any],
) -> None:
    import uvloop

    raise_nofile(len(indices) + 256)
    uvloop.run(_agents(kind, urls, indices, window, ready, connected, received, results))


async def _agents(
    kind: str,
    urls: list[str],
    indices: list[int],
    window: Window,
    ready: MpEvent,
    connected: Any,
    received: Any,
    results: mp.Queue[Any],
) -> None:
    tally = Tally(window)
    gate = asyncio.Semaphore(64)
    readers: list[asyncio.Task[None]] = []
    closers: list[Callable[[], Any]] = []
    loop = asyncio.get_running_loop()
    session: Any = None

    if kind == "switchboard":
        ids = agent_ids(max(indices) + 1)
        tokens = dict(zip(indices, issue_tokens([ids[i] for i in indices]), strict=True))

        async def one(i: int) -> None:
            async with gate:
                ws, _ = await open_agent(urls[i % len(urls)], tokens[i])
                await request(ws, {"type": "set_status", "id": 2, "status": "ready"}, lambda _: None)
            readers.append(asyncio.create_task(_read_switchboard(ws, tally)))
            closers.append(ws.transport.abort)
            connected.value += 1

    elif kind == "websockets":

        async def one(i: int) -> None:
            async with gate:
                ws = await connect(f"{urls[i % len(urls)]}/c/{i}", compression=None, max_size=None, open_timeout=120)
            readers.append(asyncio.create_task(_read_plain(ws, tally)))
            closers.append(ws.transport.abort)
            connected.value += 1

    else:
        import aiohttp
        import socketio

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def one(i: int) -> None:
            client = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=session)
            client.on("fragment", lambda text: tally.arrived(time.time(), text))
            async with gate:
                base = urls[i % len(urls)].replace("ws://", "http://")
                await client.connect(base, auth={"room": f"r{i}"}, transports=["websocket"], wait_timeout=60)
            closers.append(client.disconnect)
            connected.value += 1

    await asyncio.gather(*(one(i) for i in indices))
    ready.set()
    await loop.run_in_executor(None, window.go.wait)
    tally.start, tally.end = window.start_at.value, window.end_at.value
    cpu = CpuWindow()
    measuring = asyncio.create_task(cpu.measure(window))
    stopping = loop.run_in_executor(None, window.stop.wait)
    while not stopping.done():
        received.value = tally.total
        await asyncio.wait([stopping], timeout=0.1)
    received.value = tally.total
    if not measuring.done():
        measuring.cancel()
    pending = [result for close in closers if asyncio.iscoroutine(result := close())]
    await asyncio.gather(*pending, return_exceptions=True)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    if session is not None:
        await session.close()
    total = os.times()
    results.put(
        {
            "latencies": tally.latencies.tobytes(),
            "total": tally.total,
            "in_window": tally.in_window,
            "cpu_window_s": cpu.used,
            "cpu_s": total.user + total.system,
        }
    )


async def _read_switchboard(ws: Any, tally: Tally) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for payload in ws:
            now = time.time()
            frame = _decode_transcript(payload)
            if frame.type == "transcript":
                for fragment in frame.fragments:
                    tally.arrived(now, fragment.text)


async def _read_plain(ws: Any, tally: Tally) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for payload in ws:
            tally.arrived(time.time(), str(payload))


# --- the publishers, in their own processes --------------------------------------------------------


@dataclass
class Stream:
    url: str
    targets: list[str]
    of: int = 1  # publishing sockets in all (each sends `rate / of` a second when a rate is set)


def publisher(
    kind: str, streams: list[Stream], plan: Plan, window: Window, ready: MpEvent, results: mp.Queue[Any]
) -> None:
    import uvloop

    uvloop.run(_publish(kind, streams, plan, window, ready, results))


class _Sender:
    """One publishing socket: send while the window has room, count the answers."""

    def __init__(self, stream: Stream, plan: Plan, per_stream_rate: float) -> None:
        self.stream = stream
        self.plan = plan
        self.rate = per_stream_rate
        self.room = asyncio.Semaphore(plan.window)
        self.sent = 0
        self.acked = 0
        self.errors: dict[str, int] = {}
        self.send: Callable[[int, str, str], Any] = lambda n, target, text: None
        self.close: Callable[[], Any] = lambda: None
        self.reader: asyncio.Task[None] | None = None

    def answered(self, error: str | None = None) -> None:
        if error is None:
            self.acked += 1
        else:
            self.errors[error] = self.errors.get(error, 0) + 1
        self.room.release()

    async def open(self, kind: str, session: Any) -> None:
        if kind == "switchboard":
            ws = await connect(
                self.stream.url + "/v1/ingest",
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {API_KEY}"},
                compression=None,
                max_size=None,
                open_timeout=60,
            )
            await ws.send('{"type":"hello","id":0}')
            welcome = decode_incoming(await ws.recv())
            if welcome.type != "welcome":
                raise RuntimeError(f"ingest socket refused: {welcome.code}")

            async def send(n: int, target: str, text: str) -> None:
                await ws.send(
                    f'{{"type":"transcript","id":{n},"engagement":"{target}",'
                    f'"fragments":[{{"speaker":"consumer","text":"{text}","final":true}}]}}'
                )

            async def read() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for payload in ws:
                        reply = decode_incoming(payload)
                        if reply.type == "ok":
                            self.answered()
                        elif reply.type == "error":
                            self.answered(reply.code or "error")

            self.reader = asyncio.create_task(read())
            self.send, self.close = send, ws.close
        elif kind == "websockets":
            plain = await connect(self.stream.url + "/pub", compression=None, max_size=None, open_timeout=60)

            async def send_plain(n: int, target: str, text: str) -> None:
                await plain.send(f"{target} {text}")

            async def read_plain() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for _ in plain:
                        self.answered()

            self.reader = asyncio.create_task(read_plain())
            self.send, self.close = send_plain, plain.close
        else:
            import socketio

            client = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=session)
            await client.connect(self.stream.url.replace("ws://", "http://"), transports=["websocket"], wait_timeout=60)

            def acked(*_: Any) -> None:
                self.answered()

            async def send_sio(n: int, target: str, text: str) -> None:
                await client.emit("publish", {"room": target, "text": text}, callback=acked)

            self.send, self.close = send_sio, client.disconnect

    async def run(self, start: float, end: float) -> None:
        targets = self.stream.targets
        interval = 1 / self.rate if self.rate > 0 else 0.0
        await asyncio.sleep(max(0.0, start - time.time()))
        n = 0
        next_at = start
        while True:
            if interval:
                next_at += interval
                delay = next_at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.room.acquire()
            if time.time() >= end:
                self.room.release()
                break
            await self.send(n + 1, targets[n % len(targets)], text_for(self.plan.size))
            n += 1
        self.sent = n
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                for _ in range(self.plan.window):  # every frame answered
                    await self.room.acquire()


async def _publish(
    kind: str, streams: list[Stream], plan: Plan, window: Window, ready: MpEvent, results: mp.Queue[Any]
) -> None:
    session: Any = None
    if kind == "socketio":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    senders = [_Sender(s, plan, plan.rate / s.of) for s in streams]
    await asyncio.gather(*(s.open(kind, session) for s in senders))
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, window.go.wait)
    cpu = CpuWindow()
    measuring = asyncio.create_task(cpu.measure(window))
    await asyncio.gather(*(s.run(window.start_at.value, window.end_at.value) for s in senders))
    with contextlib.suppress(asyncio.CancelledError):
        await measuring
    for sender in senders:
        with contextlib.suppress(Exception):
            await sender.close()
    if session is not None:
        await session.close()
    errors: dict[str, int] = {}
    for sender in senders:
        for code, count in sender.errors.items():
            errors[code] = errors.get(code, 0) + count
    total = os.times()
    results.put(
        {
            "sent": sum(s.sent for s in senders),
            "acked": sum(s.acked for s in senders),
            "errors": errors,
            "cpu_window_s": cpu.used,
            "cpu_s": total.user + total.system,
        }
    )


# --- the servers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def peer_center(kind: str, nodes: int) -> Iterator[Center]:
    """`nodes` processes of a peer server (socketio on a private Redis when several)."""
    from loadtest.peers import PeerProcess
    from loadtest.servers import RedisServer

    with tempfile.TemporaryDirectory(prefix=f"switchboard-peer-{kind}-") as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis") if kind == "socketio" and nodes > 1 else None
        processes = [PeerProcess(f"{kind}{i}", kind, redis.url if redis else None, work) for i in range(nodes)]
        try:
            if redis is not None:
                redis.start()
            for process in processes:
                process.start()
            yield Center(
                [p.http for p in processes],
                [p.ws for p in processes],
                "",
                "",
                [p.proc.pid for p in processes if p.proc is not None],
            )
        finally:
            for process in processes:
                process.stop()
            if redis is not None:
                redis.stop()


async def create_engagements(
    http_urls: list[str], clients: int, queue_size: int, progress: Callable[[str, int, int], None]
) -> list[str]:
    """One engagement per agent, in that agent's queue; each must land active (auto-accept, every
    agent ready and free)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    gate = asyncio.Semaphore(64)
    ids: list[str] = []
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=httpx.Limits(max_connections=64)) as api:

        async def create(n: int) -> None:
            async with gate:
                url = f"{http_urls[n % len(http_urls)]}/v1/engagements"
                response = await api.post(url, json={"queue": queue_of(n, queue_size)})
            response.raise_for_status()
            body = response.json()
            if body["state"] != "active":
                raise RuntimeError(f"engagement {body['id']} is {body['state']}, not active: are all agents ready?")
            ids.append(body["id"])
            progress("engage", len(ids), clients)

        await asyncio.gather(*(create(n) for n in range(clients)))
    return ids


def plan_streams(kind: str, plan: Plan, center: Center, targets: list[str]) -> list[Stream]:
    """Publishing sockets spread over the nodes, each with its own share of the targets."""
    nodes = len(center.ws_urls)
    per_node = max(1, plan.publishers * plan.streams)
    streams: list[Stream] = []
    if kind == "websockets":  # independent processes: address the clients of the process you are on
        for node in range(nodes):
            mine = targets[node::nodes]
            for s in range(per_node):
                share = mine[s::per_node]
                if share:
                    streams.append(Stream(center.ws_urls[node], share))
    else:  # through a node other than the client's (room r<i> / agent i is on node i % nodes): via Redis
        count = per_node * nodes
        for s in range(count):
            share = targets[s::count]
            if share:
                streams.append(Stream(center.ws_urls[(s + 1) % nodes], share))
    for stream in streams:
        stream.of = len(streams)
    return streams


# --- one system's run ------------------------------------------------------------------------------


def run_system(kind: str, plan: Plan, center: Center, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results: mp.Queue[Any] = ctx.Queue()
    sent_results: mp.Queue[Any] = ctx.Queue()
    window = Window(ctx.Event(), ctx.Event(), ctx.Value("d", 0.0, lock=False), ctx.Value("d", 0.0, lock=False))
    label = {"switchboard": "sb", "socketio": "sio", "websockets": "ws"}[kind]
    agents: list[Any] = []
    readies: list[MpEvent] = []
    connected: list[Any] = []
    received: list[Any] = []
    processes: list[Any] = []
    try:
        for w in range(plan.workers):
            indices = list(range(w, plan.clients, plan.workers))
            if not indices:
                continue
            ready = ctx.Event()
            up, got = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)
            args = (kind, center.ws_urls, indices, window, ready, up, got, results)
            process = ctx.Process(target=agent_worker, args=args, daemon=True)
            process.start()
            agents.append(process)
            readies.append(ready)
            connected.append(up)
            received.append(got)
        processes += agents
        _wait_ready(
            readies, agents, lambda: progress(f"{label} connect", sum(c.value for c in connected), plan.clients)
        )

        if kind == "switchboard":
            targets = asyncio.run(create_engagements(center.http_urls, plan.clients, plan.queue_size, progress))
        elif kind == "socketio":
            targets = [f"r{i}" for i in range(plan.clients)]
        else:
            targets = [str(i) for i in range(plan.clients)]
        streams = plan_streams(kind, plan, center, targets)
        publishers = []
        pub_readies = []
        for p in range(plan.publishers):
            mine = streams[p :: plan.publishers]
            if not mine:
                continue
            ready = ctx.Event()
            process = ctx.Process(target=publisher, args=(kind, mine, plan, window, ready, sent_results), daemon=True)
            process.start()
            publishers.append(process)
            pub_readies.append(ready)
        processes += publishers
        _wait_ready(pub_readies, publishers, lambda: None)

        window.start_at.value = time.time() + 0.5
        window.end_at.value = window.start_at.value + plan.duration
        window.go.set()
        time.sleep(max(0.0, window.start_at.value - time.time()))
        cpu_start, redis_start = center.server_cpu_s(), center.redis_cpu_s()
        while (now := time.time()) < window.end_at.value:
            progress(f"{label} stream", round(now - window.start_at.value), round(plan.duration))
            time.sleep(min(0.2, window.end_at.value - now))
        cpu_window = center.server_cpu_s() - cpu_start
        redis_window = center.redis_cpu_s() - redis_start
        sent = [sent_results.get(timeout=60) for _ in publishers]
        acked = sum(s["acked"] for s in sent)
        drain_until = time.time() + 10
        while time.time() < drain_until:
            got_now = sum(r.value for r in received)
            progress(f"{label} drain", min(got_now, acked), acked)
            if got_now >= acked:
                break
            time.sleep(0.05)
        window.stop.set()
        parts = [results.get(timeout=60) for _ in agents]
    finally:
        window.go.set()
        window.stop.set()
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()

    latencies = array.array("d")
    for part in parts:
        latencies.frombytes(part["latencies"])
    delivered = sum(p["total"] for p in parts)
    in_window = sum(p["in_window"] for p in parts)
    errors: dict[str, int] = {}
    for s in sent:
        for code, count in s["errors"].items():
            errors[code] = errors.get(code, 0) + count
    figures = percentiles(latencies)
    generator_window = sum(p["cpu_window_s"] for p in parts) + sum(s["cpu_window_s"] for s in sent)
    return {
        "delivered_per_s": round(in_window / plan.duration, 1),
        "p50_ms": figures.get("p50_ms"),
        "p99_ms": figures.get("p99_ms"),
        "latency": figures,
        "sent": sum(s["sent"] for s in sent),
        "acked": acked,
        "errors": errors,
        "delivered": delivered,
        "delivered_in_window": in_window,
        "lost": max(0, acked - delivered),
        "publishing_sockets": len(streams),
        "server_processes": len(center.ws_urls),
        "server_cpu_pct": round(100 * cpu_window / plan.duration, 1) if center.pids else None,
        "window_cpu_s": {"nodes": round(cpu_window, 3), "redis": round(redis_window, 3)},
        "load_generator_cpu_pct": round(100 * generator_window / plan.duration, 1),
        "load_generator_cpu_s": round(sum(p["cpu_s"] for p in parts) + sum(s["cpu_s"] for s in sent), 2),
        "_latencies_ms": [x * 1000 for x in latencies],
    }


def _wait_ready(readies: list[MpEvent], processes: list[Any], tick: Callable[[], None]) -> None:
    deadline = time.time() + 300
    while not all(r.is_set() for r in readies):
        tick()
        if time.time() > deadline or not all(p.is_alive() for p in processes):
            raise RuntimeError("a load generator process failed to start (see its traceback above)")
        time.sleep(0.05)
    tick()


def run(plan: Plan, url: str | None, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    """Switchboard (nodes started here, or the server at `url` serving `center_toml(plan.clients)`),
    then each peer on fresh processes, one system at a time."""
    from loadtest.cluster import center

    raise_nofile(2 * plan.clients + 1024)  # the nodes inherit it
    with center(center_toml(plan.clients, plan.queue_size), plan.nodes, SECRET, API_KEY, url) as c:
        results = {"switchboard": run_system("switchboard", plan, c, progress)}
    for peer in plan.peers:
        with peer_center(peer, plan.nodes) as peers:
            results[peer] = run_system(peer, plan, peers, progress)
    return results
