"""Shared test helpers: configs, a synchronous world for core tests, a live server for socket tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

from protocol.frames import Event
from server.auth import issue
from server.config import Config, Directory, from_mapping
from server.core import lifecycle
from server.core.errors import Refused
from server.core.lifecycle import NewEngagement
from server.core.records import AgentRec, EngagementRec, QueueRec
from server.core.tx import Tx
from server.store.memory import MemoryStore
from server.wsprotocol import LeanWebSocketProtocol

T = TypeVar("T")
SECRET = "test-secret-0123456789-0123456789-abcdef"
API_KEY = "test-key"


def make_config(
    queues: list[dict[str, Any]],
    agents: list[dict[str, Any]],
    *,
    server: dict[str, Any] | None = None,
    supervisors: list[dict[str, Any]] | None = None,
    address_book: list[dict[str, Any]] | None = None,
    limits: dict[str, Any] | None = None,
    reporting: dict[str, Any] | None = None,
) -> Config:
    raw = {
        "server": {"secret": SECRET, "api_keys": [API_KEY], **(server or {})},
        "limits": limits or {},
        "reporting": reporting or {},
        "queues": queues,
        "agents": agents,
        "supervisors": supervisors or [{"id": "sue", "name": "Sue Visor"}],
        "address_book": address_book or [],
    }
    return from_mapping(raw, "test")


def voice_queue(id: str = "q", **over: Any) -> dict[str, Any]:
    return {"id": id, "channel": "voice", "acceptance": "manual", "ring_timeout_s": 10, "wrap_up_s": 30, **over}


def agent(id: str, *queues: str | dict[str, Any], **over: Any) -> dict[str, Any]:
    return {"id": id, "name": id.title(), "queues": list(queues), **over}


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (MemoryStore's methods) to completion, synchronously."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine suspended; it was expected to complete at once")


class World:
    """The core over a MemoryStore, driven synchronously with a hand-moved clock. For unit tests."""

    def __init__(self, config: Config, now: float = 1000.0) -> None:
        self.dir = Directory(config)
        self.store = MemoryStore(config.server.event_log_size)
        self.now = now
        counter = itertools.count(1)
        self.ids = lambda prefix: f"{prefix}{next(counter)}"
        self._seen: dict[str, int] = {}

    def do(self, command: Callable[[Tx], T]) -> T:
        def decide(snapshot: Any) -> tuple[T, Any]:
            tx = Tx(snapshot, self.dir, self.now, self.ids)
            return command(tx), tx.changes()

        return run_sync(self.store.transact(decide)).result

    def advance(self, seconds: float) -> list[str]:
        """Move the clock and fire every timer that falls due, in due order; returns the fired keys."""
        target = self.now + seconds
        fired: list[str] = []
        while True:
            due = run_sync(self.store.next_due())
            if due is None or due > target:
                break
            self.now = max(self.now, due)
            for key in run_sync(self.store.claim_due(self.now, 100)):
                fired.append(key)
                self.do(lambda tx, key=key: lifecycle.fire(tx, key))
        self.now = target
        return fired

    # reads
    def agent(self, agent_id: str) -> AgentRec:
        return run_sync(self.store.agent(agent_id)) or AgentRec(id=agent_id)

    def engagement(self, engagement_id: str) -> EngagementRec:
        rec = run_sync(self.store.engagement(engagement_id))
        assert rec is not None, f"no engagement {engagement_id}"
        return rec

    def queue(self, queue_id: str) -> QueueRec:
        return run_sync(self.store.queue(queue_id)) or QueueRec(id=queue_id)

    def events(self, agent_id: str) -> list[Event]:
        """Events for the agent since the last call."""
        after = self._seen.get(agent_id, 0)
        got = run_sync(self.store.replay(agent_id, after)) or []
        if got:
            self._seen[agent_id] = got[-1].seq
        return got

    def tags(self, agent_id: str) -> list[str]:
        return [str(type(e).__struct_config__.tag) for e in self.events(agent_id)]

    # commands, as an agent or flow would issue them
    def sign_in(self, *agent_ids: str, ready: bool = True) -> None:
        for a in agent_ids:
            self.do(lambda tx, a=a: lifecycle.sign_in(tx, a, "n1", True))
            if ready:
                self.do(lambda tx, a=a: lifecycle.set_status(tx, a, lifecycle.AgentStatus.READY, None, f"agent:{a}"))
            self.now += 1.0  # distinct idle times, so longest-idle order is the sign-in order
            self.events(a)  # sign-in's own status events are not what tests look at

    def create(self, queue: str = "q", **fields: Any) -> str:
        return self.do(lambda tx: lifecycle.create(tx, NewEngagement(queue=queue, **fields))).id

    def offer_of(self, agent_id: str) -> str:
        offers = list(self.agent(agent_id).offers)
        assert len(offers) == 1, f"{agent_id} has offers {offers}"
        return offers[0]


class refused:
    """Asserts that the block raises `Refused` with `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        assert isinstance(exc, Refused), f"expected Refused({self.code}), got {exc!r}"
        assert exc.code == self.code, f"expected {self.code}, got {exc.code}: {exc.message}"
        return True


def token(subject: str, role: str = "agent", ttl_s: float = 3600.0) -> str:
    return issue(SECRET, subject, role, ttl_s)  # type: ignore[arg-type]


@dataclass
class Running:
    app: Starlette
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serving(app: Starlette, max_frame_bytes: int = 1 << 20, port: int = 0) -> AsyncIterator[Running]:
    """Run the app under uvicorn on loopback (a free port unless given) for the duration of the block."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=LeanWebSocketProtocol,  # as `switchboard serve` runs it
        ws_max_size=max_frame_bytes,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.cancel()
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(app, port)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:  # say what is stuck, so a hang in shutdown can be fixed rather than retried
            for t in asyncio.all_tasks():
                print("TASK", t.get_name(), file=sys.stderr)
                for frame in t.get_stack():
                    traceback.print_stack(frame, file=sys.stderr, limit=1)
            raise
