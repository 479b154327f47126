"""`chaos`: K nodes and Redis (append-only) under routing load, with faults injected on a schedule.

What runs: a private redis-server with `appendonly yes` and K `switchboard serve --redis` nodes on one
center: a manual voice queue, an auto-accept chat queue, an email queue and a ring-all video queue,
with short ring timeouts, grace and node timeout, so that every fault resolves in seconds. Simulated
agents (raw sockets, in worker processes) accept most rings, decline some, let some time out, talk
for Exp(aht), end, wrap up, open and resolve emails. When a socket dies they reconnect to another
node with `resume_from` and `epoch`, and they record every event `seq` they receive and what every
snapshot (welcome, ring, engagement) told them they hold. Poisson arrivals
go to the nodes (to another one when a node fails to answer: an arrival counts as created only once
it got its 201), and a share of the callers hang up.

Faults, one at a time, on a schedule drawn from the seed:
- `kill`: kill -9 a node, and restart it on the same port a few seconds later;
- `redis`: kill redis-server and start it again on the same port and data directory (the append-only
  file keeps everything);
- `pause`: SIGSTOP a node until the others have written it off (past `node_timeout_s`), then SIGCONT:
  it must notice it was fenced, close the sockets it held and act on nothing stale.

Once the arrivals stop, the cluster settles (bounded in time), the agents sign off, the nodes stop,
and every engagement, agent and queue record is read straight from Redis and checked: the invariants
of DESIGN.md on the final records and over every history (loadtest/invariants.py); every engagement
that got a 201 exists and is final or consistently waiting, ringing or held (else it is lost). What
the agents saw on the wire is checked too (loadtest/seen.py): each agent's stream of seqs is
continuous (after a resumed welcome no gap and no repeat, after `resumed: false` a fresh start), and
no two agents were told over overlapping stretches of the server's time that the same engagement was
theirs, whatever the records kept in the end. No agent is still counted connected once every socket
has closed.
Per fault: the time to recover, until every node is ready and counted alive again, a new engagement
got its 201 and an agent was offered work; and which sockets it closed that it should not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from queue import Empty
from typing import Any, cast

import httpx
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from loadtest.connections import API_KEY, SECRET, SUBPROTOCOL, agent_ids, issue_tokens, server_limits
from loadtest.invariants import HELD, history_violations, violations, whereabouts
from loadtest.seen import Segment, double_assignments, seq_continuity, told
from loadtest.servers import NodeProcess, RedisServer
from loadtest.stats import percentiles
from protocol.codec import JSON
from protocol.frames import EngagementEvent, Error, Event, Reply, Ring, StatusEvent, Welcome
from protocol.model import AgentStatus, Channel, Engagement, EngagementState
from server.config import Directory, decode
from server.core.records import AgentRec, EngagementRec, QueueRec
from server.store.redis import Keys, RedisStore

S = EngagementState
FAULTS = ("kill", "redis", "pause")
MIX = {"voice": 0.4, "chat": 0.25, "email": 0.15, "sales": 0.2}
"""Share of arrivals per queue: voice rings one agent, chat starts at once, email lands in an open
list, sales (video) rings every eligible agent."""
HANGS_UP = ("voice", "sales")
PREFIX = "chaos"

HEARTBEAT_S = 0.25
NODE_TIMEOUT_S = 1.5
GRACE_S = 1.5
RING_TIMEOUT_S = 2.0
WRAP_UP_S = 5.0

OPEN_TIMEOUT_S = 3.0
"""A connect to a frozen node is accepted by its kernel and then never answered: give up and try another."""
REPLY_TIMEOUT_S = 5.0
RETRYABLE = frozenset({"unavailable", "rate_limited"})
"""Errors after which a request is sent again (protocol.codes.ERROR_HELP: "retry")."""
RETRIES = 60
HTTP_TIMEOUT = httpx.Timeout(3.0, connect=1.0)
ARRIVAL_PATIENCE_S = 20.0
"""How long a flow keeps retrying an arrival over the nodes before it gives the caller up (not created)."""
RECOVERY_TIMEOUT_S = 30.0
FENCE_WINDOW_S = 3.0
"""A woken node closes its sockets at its first heartbeat; a `presumed dead` close later than this
after SIGCONT means a node went on fencing sockets it should serve."""
FENCED = "presumed dead"  # what a fenced node says when it closes a socket (server/node.py)


@dataclass
class Plan:
    """A chaos run: K nodes, the agents and their load (arrivals a second, mean handle time), the kinds
    of fault and how often, and the seed that draws arrivals, the agents' choices and the faults.
    `settle` bounds the wait for the work to finish once arrivals stop; the `*_down_s` say how long a
    killed node and Redis stay down; the shares are of rings declined and let ring out, and of callers
    who hang up."""

    nodes: int = 3
    agents: int = 24
    rate: float = 4.0
    aht: float = 2.0
    duration: float = 60.0
    faults: tuple[str, ...] = FAULTS
    fault_every: float = 10.0
    seed: int = 1
    workers: int = 2
    settle: float = 60.0
    hangup_share: float = 0.1
    kill_down_s: float = 2.0
    redis_down_s: float = 1.0
    decline_share: float = 0.08
    ignore_share: float = 0.04


def center_toml(plan: Plan) -> str:
    """Four queues of every kind, every agent in voice, chat and email, every other one in sales."""
    lines = [
        "[server]",
        f'secret = "{SECRET}"',
        f'api_keys = ["{API_KEY}"]',
        f"grace_s = {GRACE_S}",
        "hello_timeout_s = 30",
        f"heartbeat_s = {HEARTBEAT_S}",
        f"node_timeout_s = {NODE_TIMEOUT_S}",
        "event_log_size = 1000",
        *server_limits(plan.agents),
        "",
        "[[queues]]",
        'id = "voice"',
        'channel = "voice"',
        f"ring_timeout_s = {RING_TIMEOUT_S}",
        f"wrap_up_s = {WRAP_UP_S}",
        "",
        "[[queues]]",
        'id = "chat"',
        'channel = "chat"',
        'acceptance = "auto"',
        f"wrap_up_s = {WRAP_UP_S}",
        "",
        "[[queues]]",
        'id = "email"',
        'channel = "email"',
        "",
        "[[queues]]",
        'id = "sales"',
        'channel = "video"',
        'strategy = "ring_all"',
        f"ring_timeout_s = {RING_TIMEOUT_S}",
        f"wrap_up_s = {WRAP_UP_S}",
        "",
    ]
    for i, agent in enumerate(agent_ids(plan.agents)):
        queues = ["voice", "chat", "email", *(["sales"] if i % 2 == 0 else [])]
        lines += ["[[agents]]", f'id = "{agent}"', f"queues = {queues!r}".replace("'", '"'), ""]
    return "\n".join(lines)


def schedule(plan: Plan) -> list[tuple[float, str, int]]:
    """(seconds into the run, kind, node index) of each fault: after a lead-in, spread over the run
    with room at the end to recover under load; in whole rounds of every kind once, each round in an
    order drawn from the seed, about `fault_every` seconds apart."""
    kinds = list(plan.faults)
    if not kinds:
        return []
    rng = random.Random(plan.seed * 7907 + 11)
    lead = min(5.0, 0.15 * plan.duration)
    tail = min(12.0, 0.3 * plan.duration)
    span = max(1.0, plan.duration - lead - tail)
    rounds = max(1, round(span / (plan.fault_every * len(kinds))))
    order: list[str] = []
    for _ in range(rounds):
        round_ = kinds[:]
        rng.shuffle(round_)
        order += round_
    slot = span / len(order)
    return [
        (lead + (i + rng.uniform(0.0, 0.5)) * slot, kind, rng.randrange(plan.nodes)) for i, kind in enumerate(order)
    ]


# --- the agents, in worker processes ------------------------------------------------------------


class Gone(Exception):
    """The node answered `hello` with something other than `welcome` (it could not sign the agent in)."""


_encode = msgspec.json.Encoder().encode


@dataclass
class Tally:
    """What one worker's agents saw and did, sent back to the main process at the end."""

    segments: list[Segment] = field(default_factory=list)
    offered: dict[str, float] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    failed_connects: int = 0
    requests: int = 0


class Desk:
    """One simulated agent who works whatever comes and keeps coming back, on any node, resuming.

    Work is driven by state, never by memory of what was sent: every welcome and every `engagement`
    event says what the agent holds, and each held engagement gets one task that carries it to its
    end. A request interrupted by a dropped socket is sent again on the next one; a repeat of what
    already took effect is refused by the server, harmlessly.
    """

    def __init__(
        self, agent: str, index: int, token: str, urls: list[str], plan: Plan, tally: Tally, stopping: asyncio.Event
    ) -> None:
        self.agent, self.token, self.urls, self.plan, self.tally = agent, token, urls, plan, tally
        self.stopping = stopping
        self.rng = random.Random(plan.seed * 1_000_003 + index)
        self.node = index % len(urls)
        self.ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.signed_in = asyncio.Event()  # first welcome and first `ready` done
        self.pending: dict[int, asyncio.Future[Reply | None]] = {}  # None: the socket closed first
        self.next_id = 0
        self.epoch = ""
        self.last_seq = 0
        self.welcomed = False
        self.work: dict[str, asyncio.Task[None]] = {}
        self.answered: set[str] = set()
        self.readying: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    # --- the connection ----------------------------------------------------------------------

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                ws, welcome, resume_from = await self._open(self.urls[self.node])
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed, Gone):
                self.tally.failed_connects += 1
                self.node = self._another_node()
                await self._nap(0.05, 0.3)
                continue
            segment: Segment = {
                "agent": self.agent,
                "node": self.node,
                "opened": time.time(),
                "resume_from": resume_from,
                "resumed": welcome.resumed,
                "head": welcome.seq,
                "seqs": [],
                "closed": None,
                "code": None,
                "reason": "",
                "welcomed_at": welcome.server_time,
                "welcome": [told(self.agent, e, welcome.seq) for e in welcome.engagements]
                + [told(self.agent, ring.engagement, welcome.seq) for ring in welcome.offers],
                "told": [],
            }
            self.tally.segments.append(segment)
            self.ws = ws
            self.connected.set()
            self._welcome(welcome)
            reading = asyncio.ensure_future(self._read(ws, segment))
            try:
                await self._until(reading)
                if not reading.done():  # the run is over: sign off
                    await ws.close()
                await reading  # and a reader that failed fails the agent: reported, never silently gone
            finally:
                self.connected.clear()
                self.ws = None
                segment["closed"] = time.time()
                segment["code"] = ws.close_code
                segment["reason"] = ws.close_reason or ""
                for future in self.pending.values():
                    if not future.done():
                        future.set_result(None)
                self.pending.clear()
            if not self.stopping.is_set():
                self.node = self._another_node()
                await self._nap(0.02, 0.2)

    def _another_node(self) -> int:
        """Where to go next: any other node (a load balancer's choice), so some come back to the one they left."""
        others = [i for i in range(len(self.urls)) if i != self.node] or [self.node]
        return self.rng.choice(others)

    async def _open(self, url: str) -> tuple[ClientConnection, Welcome, int | None]:
        resume_from = self.last_seq if self.welcomed else None
        hello: dict[str, Any] = {"type": "hello", "id": 0, "token": self.token}
        if resume_from is not None:
            hello |= {"resume_from": resume_from, "epoch": self.epoch}
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                ws = await connect(
                    f"{url}/v1/agent",
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    compression=None,
                    max_size=None,
                    ping_interval=None,
                    open_timeout=None,
                    close_timeout=1,
                )
                await ws.send(_encode(hello).decode())
                frame = JSON.decode_server(await ws.recv())
        except BaseException:
            if ws is not None:
                ws.transport.abort()
            raise
        if not isinstance(frame, Welcome):
            ws.transport.abort()
            raise Gone(f"expected welcome, got {type(frame).__name__}")
        return ws, frame, resume_from

    async def _read(self, ws: ClientConnection, segment: Segment) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for payload in ws:
                frame = JSON.decode_server(payload)
                if isinstance(frame, Reply):
                    future = self.pending.pop(frame.re, None) if isinstance(frame.re, int) else None
                    if future is not None and not future.done():
                        future.set_result(frame)
                    continue
                if isinstance(frame, Event) and frame.seq:
                    segment["seqs"].append(frame.seq)
                    self.last_seq = max(self.last_seq, frame.seq)
                if isinstance(frame, Ring | EngagementEvent):
                    segment["told"].append(told(self.agent, frame.engagement, frame.seq))
                if isinstance(frame, Ring):
                    self._ring(frame)
                elif isinstance(frame, EngagementEvent):
                    self._engagement(frame.engagement)
                elif isinstance(frame, StatusEvent) and AgentStatus.READY not in (frame.status, frame.next_status):
                    self._want_ready()  # missed a ring, or the connection was written off: back to work

    # --- what the agent does -------------------------------------------------------------------

    def _welcome(self, welcome: Welcome) -> None:
        self.epoch = welcome.epoch
        if not welcome.resumed:
            self.last_seq = welcome.seq
        self.welcomed = True
        for eng in welcome.engagements:
            self._engagement(eng)
        for ring in welcome.offers:
            self._ring(ring)
        if welcome.status is not AgentStatus.READY and welcome.next_status is not AgentStatus.READY:
            self._want_ready()
        elif not self.signed_in.is_set():
            self.signed_in.set()

    def _ring(self, ring: Ring) -> None:
        self.tally.offered.setdefault(ring.engagement.id, time.time())
        if ring.offer in self.answered:
            return
        self.answered.add(ring.offer)
        roll = self.rng.random()
        if roll < self.plan.ignore_share:
            self.tally.answers["ignored"] += 1  # let it ring out
            return
        kind = "decline" if roll < self.plan.ignore_share + self.plan.decline_share else "accept"
        self._spawn(self._answer(ring.offer, kind))

    async def _answer(self, offer: str, kind: str) -> None:
        await self._nap(0.02, 0.25)
        reply = await self.call({"type": kind, "offer": offer})
        self.tally.answers[kind if not isinstance(reply, Error) else f"{kind} refused"] += 1

    def _engagement(self, eng: Engagement) -> None:
        if eng.agent != self.agent:
            return
        if eng.state in (S.ACTIVE, S.ASSIGNED):
            self.tally.offered.setdefault(eng.id, time.time())  # auto-accept or assignment: the offer
        if eng.state in HELD and eng.id not in self.work:
            self.work[eng.id] = self._spawn(self._work(eng.id, eng.state, eng.channel))

    async def _work(self, eid: str, state: EngagementState, channel: Channel) -> None:
        try:
            if state is S.ASSIGNED:
                await self.call({"type": "open", "engagement": eid})
            if state in (S.ACTIVE, S.ASSIGNED, S.OPEN):
                await self._nap(0.0, 0.0, exactly=self.rng.expovariate(1 / self.plan.aht))
                await self.call({"type": "end", "engagement": eid})
            if channel.is_live:
                await self._nap(0.0, 0.2)
                await self.call({"type": "wrap_up_done", "engagement": eid})
        finally:
            self.work.pop(eid, None)

    def _want_ready(self) -> None:
        if self.readying is None or self.readying.done():
            self.readying = self._spawn(self._ready())

    async def _ready(self) -> None:
        for _ in range(20):
            await self._nap(0.05, 0.4)
            reply = await self.call({"type": "set_status", "status": "ready"})
            if reply is None:
                return
            if not isinstance(reply, Error):
                self.signed_in.set()
                return

    async def call(self, frame: dict[str, Any]) -> Reply | None:
        """Send a request and wait for its reply; sent again on the next socket when this one drops
        first, and again (a while) when the node says to retry. None once the run is over."""
        loop = asyncio.get_running_loop()
        retries = 0
        while not self.stopping.is_set():
            ws = self.ws
            if ws is None or not self.connected.is_set():
                await self._until(self.connected)
                continue
            self.next_id += 1
            rid = self.next_id
            future: asyncio.Future[Reply | None] = loop.create_future()
            self.pending[rid] = future
            try:
                await ws.send(_encode({**frame, "id": rid}).decode())
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    reply = await future
            except (ConnectionClosed, TimeoutError):
                reply = None
            if reply is None:
                self.pending.pop(rid, None)
                # the socket is going (a send to it can fail at once, without yielding): let the reader
                # see it close and the agent come back, then send again
                await self._nap(0.05, 0.2)
                continue
            self.tally.requests += 1
            if isinstance(reply, Error):
                self.tally.errors[f"{frame['type']}: {reply.code}"] += 1
                if reply.code in RETRYABLE and retries < RETRIES:
                    retries += 1
                    await self._nap(0.1, 0.4)
                    continue
            return reply
        return None

    # --- plumbing ------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _until(self, what: asyncio.Event | asyncio.Future[None]) -> None:
        """Wait for an event to be set (or a task to end), or for the end of the run."""
        stop = asyncio.ensure_future(self.stopping.wait())
        wait = asyncio.ensure_future(what.wait()) if isinstance(what, asyncio.Event) else what
        try:
            await asyncio.wait([wait, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if wait is not what:
                wait.cancel()

    async def _nap(self, low: float, high: float, *, exactly: float | None = None) -> None:
        """Sleep (a random time in [low, high], or `exactly`), cut short by the end of the run."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(exactly if exactly is not None else self.rng.uniform(low, high)):
                await self.stopping.wait()


def agent_worker(
    urls: list[str],
    ids: list[str],
    indices: list[int],
    plan: Plan,
    ready: MpEvent,
    stop: MpEvent,
    results: mp.Queue[Any],
) -> None:
    import uvloop

    uvloop.run(_agents(urls, ids, indices, plan, ready, stop, results))


async def _agents(
    urls: list[str],
    ids: list[str],
    indices: list[int],
    plan: Plan,
    ready: MpEvent,
    stop: MpEvent,
    results: mp.Queue[Any],
) -> None:
    tally = Tally()
    stopping = asyncio.Event()
    desks = [
        Desk(agent, index, token, urls, plan, tally, stopping)
        for agent, index, token in zip(ids, indices, issue_tokens(ids), strict=True)
    ]
    runs = [asyncio.create_task(desk.run()) for desk in desks]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            await asyncio.gather(*(desk.signed_in.wait() for desk in desks))
    signed_in = sum(desk.signed_in.is_set() for desk in desks)
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    stopping.set()
    ended = await asyncio.gather(*runs, return_exceptions=True)
    crashed = [f"{desk.agent}: {end!r}" for desk, end in zip(desks, ended, strict=True) if end is not None]
    leftovers = [task for desk in desks for task in desk.tasks]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
    cpu = os.times()
    results.put(
        {
            "segments": tally.segments,
            "offered": tally.offered,
            "errors": dict(tally.errors),
            "answers": dict(tally.answers),
            "failed_connects": tally.failed_connects,
            "requests": tally.requests,
            "signed_in": signed_in,
            "agents": len(desks),
            "crashed": crashed,
            "cpu_s": cpu.user + cpu.system,
        }
    )


# --- the cluster and its faults, in the main process -----------------------------------------------


class PinnedNode(NodeProcess):
    """A node that comes back on the port it first got (the agents' list of nodes stays right), and
    whose log reader is done with the pipe before the pipe is closed."""

    def __init__(self, name: str, config: Path, redis_url: str, prefix: str, logdir: Path) -> None:
        super().__init__(name, config, redis_url, prefix, logdir)
        self._drained = threading.Event()

    def start(self) -> None:
        self._drained = threading.Event()
        super().start()
        self.args[self.args.index("--port") + 1] = str(self.port)

    def _drain(self, stream: object) -> None:
        try:
            super()._drain(stream)
        finally:
            self._drained.set()

    def send(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self._drained.wait(5)
        super().kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen node cannot drain
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self._drained.wait(5)
        super().stop()


class Cluster:
    """Redis and the nodes of a chaos run, the faults that can be done to them, and how to tell that the
    cluster is whole again: every node ready, and exactly K nodes beating."""

    def __init__(self, work: Path, plan: Plan) -> None:
        self.plan = plan
        self.config = work / "center.toml"
        self.config.write_text(center_toml(plan))
        self.redis = RedisServer(work / "redis", appendonly=True)
        self.nodes = [PinnedNode(f"node{i}", self.config, self.redis.url, PREFIX, work) for i in range(plan.nodes)]
        self.ids = [""] * plan.nodes
        self.names: dict[str, str] = {}
        self.keys = Keys(PREFIX)
        self.db = Redis.from_url(self.redis.url)

    @property
    def http_urls(self) -> list[str]:
        return [n.http for n in self.nodes]

    @property
    def ws_urls(self) -> list[str]:
        return [n.ws for n in self.nodes]

    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)
        for i in range(len(self.nodes)):
            await self._start_node(i)

    async def stop_nodes(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(node.stop) for node in self.nodes))

    async def close(self) -> None:
        await self.stop_nodes()
        await self.db.aclose()
        await asyncio.to_thread(self.redis.stop)

    async def _start_node(self, i: int) -> None:
        """Start node i and learn its id: the member its first heartbeat added to the registry."""
        before = await self._members()
        await asyncio.to_thread(self.nodes[i].start)

        async def joined_one() -> bool:
            return len(await self._members() - before) == 1

        await self._until(joined_one, time.time() + 10)
        joined = await self._members() - before
        if len(joined) != 1:
            raise RuntimeError(f"node{i} started but its id is unknown ({sorted(joined)})")
        self.ids[i] = joined.pop()
        self.names[self.ids[i]] = f"node{i}"

    async def _members(self) -> set[str]:
        return {m.decode() for m in cast(list[bytes], await self.db.zrange(self.keys.nodes, 0, -1))}

    async def _alive(self) -> set[str]:
        """The nodes whose last heartbeat is recent enough for the others to count them alive, and that
        were not written off (a frozen node's first beat on waking lands before it learns it was)."""
        since = time.time() - NODE_TIMEOUT_S
        fresh = {m.decode() for m in cast(list[bytes], await self.db.zrangebyscore(self.keys.nodes, since, "+inf"))}
        return fresh - await self._buried()

    async def _buried(self) -> set[str]:
        """The nodes written off so far (their fencing marks)."""
        head = len(self.keys.buried(""))
        return {k.decode()[head:] async for k in self.db.scan_iter(match=self.keys.buried("*"))}

    async def _whole(self, api: httpx.AsyncClient) -> bool:
        try:
            answers = await asyncio.gather(*(api.get(f"{url}/readyz") for url in self.http_urls))
            return all(a.status_code == 200 for a in answers) and len(await self._alive()) == len(self.nodes)
        except (httpx.HTTPError, RedisError, OSError):
            return False

    async def _until(self, check: Callable[[], Coroutine[Any, Any, bool]], deadline: float) -> float | None:
        """Poll `check` until it holds (the time it did) or the deadline passes (None)."""
        while time.time() < deadline:
            try:
                if await check():
                    return time.time()
            except (RedisError, OSError):
                pass  # Redis is coming back: ask again
            await asyncio.sleep(0.05)
        return None

    async def fault(self, kind: str, i: int, api: httpx.AsyncClient) -> dict[str, Any]:
        """Do one fault and wait (bounded) until the cluster is whole again; what happened, with times."""
        node = self.nodes[i]
        target = "" if kind == "redis" else self.ids[i]
        buried_before = await self._buried()
        if target in buried_before:
            raise RuntimeError(f"lost track of node{i}'s id: {target} was written off before")
        started = time.time()
        deadline = started + RECOVERY_TIMEOUT_S + self.plan.kill_down_s
        # the write-off of the node hit, watched from the start (it happens while the fault lasts)
        woken = 0.0
        burial = asyncio.create_task(self._until(self._is_buried(target), deadline)) if target else None
        if kind == "kill":
            await asyncio.to_thread(node.kill)
            await asyncio.sleep(self.plan.kill_down_s)  # the fault itself: the node stays dead this long
            await self._start_node(i)
        elif kind == "pause":
            assert burial is not None
            node.send(signal.SIGSTOP)
            try:  # frozen until the others write it off: past the node timeout, as a long GC pause or a VM stall
                await asyncio.shield(burial)
            finally:
                woken = time.time()  # before the signal: the node may run (and fence) before this process does
                node.send(signal.SIGCONT)
        elif kind == "redis":
            await asyncio.to_thread(self.redis.stop, True)
            await asyncio.sleep(self.plan.redis_down_s)
            await asyncio.to_thread(self.redis.start)
        else:
            raise ValueError(f"unknown fault {kind!r}")
        ended = woken if kind == "pause" else time.time()
        deadline = ended + RECOVERY_TIMEOUT_S
        whole_at = await self._until(lambda: self._whole(api), deadline)
        written_off_at = await burial if burial is not None else None
        if kind == "pause":
            others = {self.ids[j] for j in range(len(self.nodes)) if j != i}
            rejoined = await self._alive() - others
            if len(rejoined) == 1:  # the woken node, under whatever id it beats now
                self.ids[i] = rejoined.pop()
                self.names[self.ids[i]] = f"node{i}"
        expected = {target} if target else set()
        wrongly = sorted(self.names.get(n, n) for n in await self._buried() - buried_before - expected)
        return {
            "kind": kind,
            "node": None if kind == "redis" else f"node{i}",
            "started": started,
            "ended": ended,
            "whole_at": whole_at,
            "written_off_at": written_off_at,
            "held_s": round(ended - started, 3),
            "wrongly_written_off": wrongly,
        }

    def _is_buried(self, node_id: str) -> Callable[[], Coroutine[Any, Any, bool]]:
        async def check() -> bool:
            return bool(await self.db.exists(self.keys.buried(node_id)))

        return check


# --- arrivals -----------------------------------------------------------------------------------


@dataclass
class Arrival:
    n: int
    queue: str
    posted: float
    answered: float | None = None
    eid: str | None = None
    attempts: int = 0
    error: str = ""
    hangup: str = ""


async def _post(
    api: httpx.AsyncClient, urls: list[str], order: list[int], path: str, body: Any, deadline: float
) -> tuple[httpx.Response | None, int]:
    """POST to the nodes in `order`, going round while they fail to answer or answer 5xx (down, frozen,
    Redis away), until the deadline. Returns the answer (None if none came) and the attempts made."""
    attempts = 0
    while time.time() < deadline:
        for i in order:
            attempts += 1
            try:
                response = await api.post(f"{urls[i]}{path}", json=body)
            except httpx.HTTPError:
                continue
            if response.status_code < 500:
                return response, attempts
        await asyncio.sleep(0.1)
    return None, attempts


async def _arrive(
    api: httpx.AsyncClient, urls: list[str], arrival: Arrival, order: list[int], hang_up_after: float | None
) -> None:
    body: dict[str, Any] = {"queue": arrival.queue, "variables": {"n": arrival.n}}
    if arrival.queue == "email":
        body |= {"subject": f"Order {arrival.n}", "body": "Where is my parcel?", "consumer": {"email": "c@example.org"}}
    response, arrival.attempts = await _post(
        api, urls, order, "/v1/engagements", body, time.time() + ARRIVAL_PATIENCE_S
    )
    if response is None or response.status_code != 201:
        arrival.error = "no answer" if response is None else f"{response.status_code} {response.json().get('code')}"
        return
    arrival.answered = time.time()
    arrival.eid = response.json()["id"]
    if hang_up_after is not None:
        await asyncio.sleep(hang_up_after)
        path = f"/v1/engagements/{arrival.eid}/end"
        ended, _ = await _post(api, urls, order, path, None, time.time() + ARRIVAL_PATIENCE_S)
        arrival.hangup = "no answer" if ended is None else str(ended.status_code)


async def _arrivals(
    plan: Plan, urls: list[str], api: httpx.AsyncClient, out: list[Arrival], progress: Callable[[str, int, int], None]
) -> None:
    """Poisson arrivals at `plan.rate` for `plan.duration`, each to the nodes in a random order."""
    rng = random.Random(plan.seed)
    queues, weights = list(MIX), list(MIX.values())
    pending: set[asyncio.Task[None]] = set()
    start = time.time()
    at = 0.0
    expected = round(plan.rate * plan.duration)
    while True:
        at += rng.expovariate(plan.rate)
        if at >= plan.duration:
            break
        await asyncio.sleep(max(0.0, start + at - time.time()))
        queue = rng.choices(queues, weights)[0]
        arrival = Arrival(len(out), queue, time.time())
        out.append(arrival)
        hang = rng.uniform(0.5, 4.0) if queue in HANGS_UP and rng.random() < plan.hangup_share else None
        task = asyncio.create_task(_arrive(api, urls, arrival, rng.sample(range(plan.nodes), plan.nodes), hang))
        pending.add(task)
        task.add_done_callback(pending.discard)
        progress("arrivals", len(out), expected)
    await asyncio.gather(*pending)


async def _inject(
    cluster: Cluster,
    plan: Plan,
    api: httpx.AsyncClient,
    started: float,
    out: list[dict[str, Any]],
    progress: Callable[[str, int, int], None],
) -> None:
    """The faults of the schedule, one after the other (the next waits until the last one recovered)."""
    planned = schedule(plan)
    for n, (at, kind, i) in enumerate(planned):
        await asyncio.sleep(max(0.0, started + at - time.time()))
        out.append(await cluster.fault(kind, i, api))
        progress("faults", n + 1, len(planned))


# --- settling and reading the records -------------------------------------------------------------


def _result(results: mp.Queue[Any]) -> dict[str, Any]:
    """One worker's report (its agents sign off within seconds of the stop)."""
    try:
        return cast(dict[str, Any], results.get(True, 60))
    except Empty:
        raise RuntimeError("an agent worker sent no report (see its traceback above)") from None


async def _settle(
    store: RedisStore, ids: list[str], deadline: float, progress: Callable[[str, int, int], None]
) -> None:
    """Wait (bounded) until every created engagement is over, the agents working the queues empty."""
    unfinished = set(ids)
    while unfinished and time.time() < deadline:
        for eid in list(unfinished):
            record = await store.engagement(eid)
            if record is not None and record.state.is_final:
                unfinished.discard(eid)
        progress("settling", len(ids) - len(unfinished), len(ids))
        if unfinished:
            await asyncio.sleep(0.5)


async def _ghosts(store: RedisStore, ids: list[str], deadline: float) -> dict[str, dict[str, int]]:
    """Once every socket closed, no agent may still be counted connected (wait, bounded, for the nodes
    to record the last closes and to write off the nodes that died with sockets)."""
    while True:
        counted = {a.id: a.sessions for a in await store.agents(ids) if a is not None and a.sessions}
        if not counted or time.time() > deadline:
            return counted
        await asyncio.sleep(0.1)


@dataclass
class Records:
    engagements: list[EngagementRec]
    agents: list[AgentRec]
    queues: list[QueueRec]


async def _read_all(store: RedisStore, directory: Directory) -> Records:
    """Every engagement, agent and queue record, straight from Redis."""
    head = len(store.keys.engagement(""))
    eids = [k.decode()[head:] async for k in store.redis.scan_iter(match=store.keys.engagement("*"), count=1000)]
    engagements = [e for eid in sorted(eids) if (e := await store.engagement(eid)) is not None]
    agents = [a for a in await store.agents(list(directory.agents)) if a is not None]
    queues = [q for q in [await store.queue(q) for q in directory.queues] if q is not None]
    return Records(engagements, agents, queues)


# --- the checks -----------------------------------------------------------------------------------


def _first_after(times: Iterable[float], after: float) -> float | None:
    return min((t for t in times if t >= after), default=None)


def fault_outcomes(
    faults: list[dict[str, Any]], arrivals: list[Arrival], offered: dict[str, float], segments: list[Segment]
) -> list[dict[str, Any]]:
    """Per fault: when the cluster had recovered (whole again, a new engagement answered 201 and an
    agent offered work, all after the fault ended; for a node, also written off), and the sockets it
    closed: on the node hit (expected), elsewhere (collateral, not expected), and for a pause whether
    every socket the frozen node held was closed by its fencing when it woke."""
    outcomes = []
    for f in faults:
        ended = f["ended"]
        accepted = _first_after((a.answered for a in arrivals if a.answered and a.posted >= ended), ended)
        rang = _first_after(offered.values(), ended)
        needed = [f["whole_at"], accepted, rang] + ([f["written_off_at"]] if f["node"] else [])
        recovered_at = None if None in needed else max(t for t in needed if t is not None)
        window_end = recovered_at if recovered_at is not None else ended + RECOVERY_TIMEOUT_S
        node = None if f["node"] is None else int(f["node"].removeprefix("node"))
        closed = [s for s in segments if s["closed"] is not None and f["started"] <= s["closed"] <= window_end]
        outcome = {
            "kind": f["kind"],
            "node": f["node"],
            "at_s": f["at_s"],
            "held_s": f["held_s"],
            "recovered": recovered_at is not None and recovered_at - ended <= RECOVERY_TIMEOUT_S,
            "recovery_s": None if recovered_at is None else round(recovered_at - f["started"], 3),
            "whole_after_s": None if f["whole_at"] is None else round(f["whole_at"] - f["started"], 3),
            "written_off_after_s": None
            if f["written_off_at"] is None
            else round(f["written_off_at"] - f["started"], 3),
            "first_201_after_s": None if accepted is None else round(accepted - f["started"], 3),
            "first_offer_after_s": None if rang is None else round(rang - f["started"], 3),
            "sockets_closed": sum(1 for s in closed if s["node"] == node),
            "collateral_closes": sum(1 for s in closed if s["node"] != node),
            "wrongly_written_off": f["wrongly_written_off"],
        }
        if f["kind"] == "pause":
            held = [
                s
                for s in segments
                if s["node"] == node and s["opened"] < f["started"] and (s["closed"] is None or s["closed"] > ended)
            ]
            fenced = [s for s in held if FENCED in s["reason"] and s["closed"] <= ended + FENCE_WINDOW_S]
            outcome |= {"held_through": len(held), "fenced": len(fenced), "left_open": len(held) - len(fenced)}
            outcome["recovered"] = outcome["recovered"] and not outcome["left_open"]
        outcome["recovered"] = outcome["recovered"] and not outcome["wrongly_written_off"]
        outcomes.append(outcome)
    return outcomes


def stray_fencing(faults: list[dict[str, Any]], segments: list[Segment]) -> int:
    """Sockets closed as `presumed dead` outside the moment a paused node woke: a node that went on
    fencing the sockets it should have been serving."""
    windows = [
        (int(f["node"].removeprefix("node")), f["ended"], f["ended"] + FENCE_WINDOW_S)
        for f in faults
        if f["kind"] == "pause"
    ]
    return sum(
        1
        for s in segments
        if FENCED in s["reason"] and not any(n == s["node"] and lo <= s["closed"] <= hi for n, lo, hi in windows)
    )


def analyse(
    plan: Plan,
    directory: Directory,
    arrivals: list[Arrival],
    parts: list[dict[str, Any]],
    faults: list[dict[str, Any]],
    records: Records,
    ghosts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    segments = [s for p in parts for s in p["segments"]]
    offered: dict[str, float] = {}
    for part in parts:
        for eid, at in part["offered"].items():
            offered[eid] = min(at, offered.get(eid, at))
    engs = {e.id: e for e in records.engagements}
    created = [a for a in arrivals if a.eid is not None]
    places = whereabouts([a.eid for a in created if a.eid], records.engagements, records.agents, records.queues)
    where = Counter(places.values())
    lost = [f"{eid} ({engs[eid].state if eid in engs else 'missing'})" for eid, p in places.items() if p == "lost"]
    answered = {a.eid for a in created}
    orphans = [e for e in engs.values() if e.id not in answered]
    problems = violations(directory, records.agents, records.engagements, records.queues)
    problems += history_violations(directory, records.engagements)
    seq, resumes = seq_continuity(segments)
    doubles = double_assignments(segments)
    outcomes = fault_outcomes(faults, arrivals, offered, segments)
    by_kind: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        k = by_kind.setdefault(o["kind"], {"injected": 0, "recovered": 0, "recovery_s": []})
        k["injected"] += 1
        k["recovered"] += int(o["recovered"])
        if o["recovery_s"] is not None:
            k["recovery_s"].append(o["recovery_s"])
    for k in by_kind.values():
        times = k.pop("recovery_s")
        k["max_recovery_s"] = max(times, default=None)
    closes = Counter(f"{s['code']} {s['reason']}".strip() for s in segments if s["closed"] is not None)
    errors: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    for part in parts:
        errors.update(part["errors"])
        answers.update(part["answers"])
    offer_delays = [offered[a.eid] - a.posted for a in created if a.eid in offered]
    return {
        "plan": {**asdict(plan), "faults": list(plan.faults)},
        "engagements": {
            "created": len(created),
            "unanswered": sum(1 for a in arrivals if a.eid is None),
            "orphans": len(orphans),
            "completed": where["closed"] + where["resolved"],
            "closed": where["closed"],
            "resolved": where["resolved"],
            "abandoned": where["abandoned"],
            "still_open": {k: where[k] for k in ("waiting", "ringing", "held")},
            "by_queue": dict(Counter(a.queue for a in created)),
            "hang_ups": dict(Counter(a.hangup for a in created if a.hangup)),
        },
        "lost": len(lost),
        "lost_engagements": lost[:20],
        "violations": problems[:50],
        "invariant_violations": len(problems),
        "double_assignments_seen_by_agents": len(doubles),
        "double_assignments": doubles[:20],
        "seq_gaps": seq["gaps"],
        "faults": outcomes,
        "faults_by_kind": by_kind,
        "faults_injected": len(outcomes),
        "faults_recovered": sum(1 for o in outcomes if o["recovered"]),
        "stray_fencing": stray_fencing(faults, segments),
        "resumes": resumes,
        "seq": {**seq, "problems": seq["problems"][:20]},
        "ghost_sessions": {a: dict(s) for a, s in ghosts.items()},
        "connections": {
            "opened": len(segments),
            "failed_attempts": sum(p["failed_connects"] for p in parts),
            "closes": dict(closes.most_common()),
        },
        "agents": {
            "signed_in": sum(p["signed_in"] for p in parts),
            "crashed": [c for p in parts for c in p["crashed"]],
            "requests": sum(p["requests"] for p in parts),
            "snapshots_seen": sum(len(s["welcome"]) + len(s["told"]) for s in segments),
            "answers": dict(answers),
            "errors": dict(errors.most_common()),
        },
        "time_to_offer": percentiles(offer_delays),
        "load_generator_cpu_s": round(sum(p["cpu_s"] for p in parts), 2),
    }


# --- the whole run -----------------------------------------------------------------------------


def run(plan: Plan, progress: Callable[[str, int, int], None], workdir: Path | None = None) -> dict[str, Any]:
    """Run the scenario on a cluster of its own, in `workdir` (kept: the config, the nodes' logs, Redis's
    files and `raw.json`, the records the report was drawn from) or in a temporary directory."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_run(plan, workdir, progress))
    with tempfile.TemporaryDirectory(prefix="switchboard-chaos-") as tmp:
        return asyncio.run(_run(plan, Path(tmp), progress))


async def _run(plan: Plan, work: Path, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    unknown = set(plan.faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    directory = Directory(decode(center_toml(plan)))
    cluster = Cluster(work, plan)
    ctx = mp.get_context("spawn")
    results: mp.Queue[Any] = ctx.Queue()
    stop = ctx.Event()
    workers: list[Any] = []
    try:
        await cluster.start()
        ids = agent_ids(plan.agents)
        readies = []
        for w in range(plan.workers):
            share = list(range(w, plan.agents, plan.workers))
            if not share:
                continue
            ready = ctx.Event()
            args = (cluster.ws_urls, [ids[i] for i in share], share, plan, ready, stop, results)
            worker = ctx.Process(target=agent_worker, args=args, daemon=True)
            worker.start()
            workers.append(worker)
            readies.append(ready)
        for ready in readies:
            if not await asyncio.to_thread(ready.wait, 120):
                raise RuntimeError("an agent worker did not sign its agents in")
        arrivals: list[Arrival] = []
        faults: list[dict[str, Any]] = []
        started = time.time()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT) as api:
            await asyncio.gather(
                _arrivals(plan, cluster.http_urls, api, arrivals, progress),
                _inject(cluster, plan, api, started, faults, progress),
            )
        load_s = time.time() - started
        store = RedisStore(Redis.from_url(cluster.redis.url), prefix=PREFIX)
        try:
            created = [a.eid for a in arrivals if a.eid is not None]
            await _settle(store, created, time.time() + plan.settle, progress)
            settle_s = time.time() - started - load_s
            stop.set()
            parts = [await asyncio.to_thread(_result, results) for _ in workers]
            ghosts = await _ghosts(store, ids, time.time() + 3 * NODE_TIMEOUT_S + 5)
            await cluster.stop_nodes()
            records = await _read_all(store, directory)
        finally:
            await store.close()
        for f in faults:
            f["at_s"] = round(f["started"] - started, 3)
        if any(p["signed_in"] < p["agents"] for p in parts):
            raise RuntimeError("some agents never signed in and went ready")
        raw = {"faults": faults, "arrivals": [asdict(a) for a in arrivals], "sockets": [p["segments"] for p in parts]}
        (work / "raw.json").write_text(json.dumps(raw))  # what the figures were drawn from, to look into a run
        report = analyse(plan, directory, arrivals, parts, faults, records, ghosts)
        report |= {"load_s": round(load_s, 2), "settle_s": round(settle_s, 2)}
        return report
    finally:
        stop.set()
        for worker in workers:
            await asyncio.to_thread(worker.join, 30)
            if worker.is_alive():
                worker.terminate()
        await cluster.close()


def summary(report: dict[str, Any]) -> str:
    """The report in a few lines, for people."""
    plan, e, seq, resumes = report["plan"], report["engagements"], report["seq"], report["resumes"]
    still = e["still_open"]
    kinds = ", ".join(f"{k} {v['injected']}" for k, v in report["faults_by_kind"].items()) or "none"
    lines = [
        f"chaos: {plan['nodes']} nodes, {plan['agents']} agents, {plan['rate']:g}/s for {plan['duration']:g} s "
        f"(aht {plan['aht']:g} s), seed {plan['seed']}; load {report['load_s']} s, settled in {report['settle_s']} s",
        f"engagements: {e['created']} created ({e['unanswered']} arrivals never answered, {e['orphans']} created "
        f"without an answer), {e['completed']} completed ({e['closed']} closed, {e['resolved']} resolved), "
        f"{e['abandoned']} abandoned, still open {sum(still.values())} (waiting {still['waiting']}, ringing "
        f"{still['ringing']}, held {still['held']}); lost {report['lost']}",
        f"faults: {report['faults_injected']} injected ({kinds}), {report['faults_recovered']} recovered",
    ]
    for f in report["faults"]:
        detail = f"{f['sockets_closed']} sockets closed there, {f['collateral_closes']} elsewhere"
        if f["kind"] == "pause":
            detail += f"; {f['fenced']}/{f['held_through']} held through the pause fenced on waking"
        if f["written_off_after_s"] is not None:
            detail += f"; written off after {f['written_off_after_s']} s"
        if f["wrongly_written_off"]:
            detail += f"; WRONGLY written off: {', '.join(f['wrongly_written_off'])}"
        recovery = f"recovered in {f['recovery_s']} s" if f["recovered"] else "NOT RECOVERED"
        lines.append(
            f"  {f['kind']:<5} {f['node'] or 'redis':<6} at {f['at_s']:>6.1f} s, held {f['held_s']:>5.2f} s, "
            f"{recovery} ({detail})"
        )
    lines += [
        f"resumes: {resumes['resumed']} resumed, {resumes['fresh']} fresh (besides {resumes['first_sign_ins']} "
        f"first sign-ins); seq: {seq['events']} events, {seq['gaps']} gaps, {seq['duplicates']} duplicates, "
        f"{seq['backwards']} going backwards, {seq['stale_resumes']} resumes behind the agent",
        f"invariant violations: {report['invariant_violations']}; double assignments seen by agents: "
        f"{report['double_assignments_seen_by_agents']}; agents still counted connected at the end: "
        f"{len(report['ghost_sessions'])}; sockets fenced outside a pause: {report['stray_fencing']}",
    ]
    lines += [f"  violation: {v}" for v in report["violations"][:10]]
    lines += [f"  seen twice: {x}" for x in report["double_assignments"][:10]]
    lines += [f"  lost: {x}" for x in report["lost_engagements"][:10]]
    lines += [f"  seq: {x}" for x in seq["problems"][:10]]
    return "\n".join(lines)
