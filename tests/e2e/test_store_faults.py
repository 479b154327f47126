"""A store that fails under a live node (as Redis restarting does): agent sockets stay open and catch up
once it is back, a close is recorded once it is back (else the agent would count as connected with no
socket), and a session told to close closes, even when the cancellation meant to stop its request in
flight is lost on the way (asyncio.wait_for on Python 3.11, which redis-py uses, can swallow one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.exceptions import ConnectionClosed

from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Event
from server.app import create_app
from server.bus.memory import MemoryBroker
from server.core.errors import Refused
from server.store.base import Committed, Decide, T
from server.store.memory import MemoryStore
from tests.e2e.conftest import center_config, raw_agent
from tests.support import Running, serving


class Flaky(MemoryStore):
    """The embedded store, with the outages and the stalls of a remote one."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing: set[str] = set()  # operations answered `unavailable` for now
        self.refused: Counter[str] = Counter()
        self.stall: asyncio.Event | None = None  # the next transaction waits for it
        self.stalled = False

    def _reach(self, operation: str) -> None:
        if operation in self.refusing:
            self.refused[operation] += 1
            raise Refused(ErrorCode.UNAVAILABLE, "storage unreachable (ConnectionError)")

    async def transact(self, decide: Decide[T]) -> Committed[T]:
        self._reach("transact")
        if self.stall is not None:
            stall, self.stall = self.stall, None
            self.stalled = True
            # waits until cancelled, and loses the cancellation, as wait_for does when its result came
            # at the same moment: the transaction goes on and commits
            with contextlib.suppress(asyncio.CancelledError):
                await stall.wait()
        return await super().transact(decide)

    async def replay(self, agent_id: str, after: int) -> list[Event] | None:
        self._reach("replay")
        return await super().replay(agent_id, after)


@pytest.fixture
async def store() -> Flaky:
    return Flaky()


@pytest.fixture
async def live(store: Flaky) -> AsyncIterator[Running]:
    async with serving(create_app(center_config(), store=store, broker=MemoryBroker())) as running:
        yield running


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll `check` (bounded in time) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        await asyncio.sleep(0.02)


async def test_a_socket_closed_while_the_store_is_away_is_recorded_as_gone_once_it_is_back(live: Running, store: Flaky):
    raw, _ = await raw_agent(live, "ann")
    store.refusing.add("transact")
    await raw.ws.close()

    async def tried_again() -> bool:
        return store.refused["transact"] >= 2

    await eventually(tried_again)
    store.refusing.clear()

    async def gone() -> bool:
        agent = await store.agent("ann")
        return agent is not None and not agent.connected

    await eventually(gone)


async def test_a_catch_up_while_the_store_is_away_waits_for_it_and_the_socket_stays_open(live: Running, store: Flaky):
    raw, welcome = await raw_agent(live, "ann")
    store.refusing.add("replay")
    live.app.state.node.broker.hub.resync()  # the broker lost its connection: every socket reads the log

    async def tried_again() -> bool:
        return store.refused["replay"] >= 2

    await eventually(tried_again)
    store.refusing.clear()
    reply = await raw.request({"type": "set_status", "id": 1, "status": "ready"})
    assert reply["type"] == "ok"
    status = await raw.first(lambda f: f["type"] == "status" and f["status"] == "ready")
    assert status["seq"] > welcome["seq"]
    assert raw.ws.close_code is None


async def test_a_session_told_to_close_mid_request_closes_even_if_the_cancellation_is_lost(live: Running, store: Flaky):
    raw, _ = await raw_agent(live, "ann")
    store.stall = asyncio.Event()
    await raw.send({"type": "set_status", "id": 1, "status": "ready"})

    async def in_the_store() -> bool:
        return store.stalled

    await eventually(in_the_store)
    (session,) = [s for s in live.app.state.node.sessions if getattr(s, "subject", "") == "ann"]
    session.fail(CloseCode.GOING_AWAY, "this node was presumed dead; reconnect")
    with pytest.raises(ConnectionClosed) as closed:
        await raw.first(lambda f: f.get("re") == 1)  # a failed session answers nothing more: it closes
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.GOING_AWAY
