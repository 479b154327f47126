"""Node liveness over one shared store: when a node writes another off, and what a node written off does
when it notices. A hand-moved clock; `Node.beat` called as the liveness loop calls it, every 0.2 s."""

from __future__ import annotations

import pytest

from protocol.codes import CloseCode, ErrorCode
from server.bus.memory import MemoryBroker
from server.config import Directory
from server.core import lifecycle
from server.core.errors import Refused
from server.node import Node
from server.store.memory import MemoryStore
from tests.support import agent, make_config, voice_queue

CONFIG = make_config(
    [voice_queue("calls")], [agent("ann", "calls")], server={"heartbeat_s": 0.2, "node_timeout_s": 1.0}
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Unreachable(MemoryStore):
    """A store whose heartbeats fail while `down` (Redis restarting)."""

    down = False

    async def heartbeat(self, node_id: str, now: float) -> bool:
        if self.down:
            raise Refused(ErrorCode.UNAVAILABLE, "storage unreachable (ConnectionError)")
        return await super().heartbeat(node_id, now)


class Socket:
    """A session as the node sees it: it can be told to close."""

    role = "agent"

    def __init__(self) -> None:
        self.failed: list[CloseCode] = []

    def fail(self, code: CloseCode, reason: str) -> None:
        self.failed.append(code)

    def drain(self, retry_after_ms: int) -> None:
        raise AssertionError("not draining")


def make_node(store: MemoryStore, clock: Clock, node_id: str) -> Node:
    return Node(Directory(CONFIG), store, MemoryBroker(), clock=clock, node_id=node_id)


async def beat_for(seconds: float, clock: Clock, *nodes: Node) -> None:
    """Move the clock on in heartbeats, every node beating at each one."""
    for _ in range(round(seconds / 0.2)):
        clock.now += 0.2
        for node in nodes:
            await node.beat()


async def test_after_the_store_was_away_no_node_writes_off_the_others_that_come_back():
    clock, store = Clock(), Unreachable()
    a, b = make_node(store, clock, "a"), make_node(store, clock, "b")
    await beat_for(2.0, clock, a, b)
    store.down = True  # Redis restarts: nobody's heartbeat gets through for 3 s
    for _ in range(15):
        clock.now += 0.2
        for node in (a, b):
            with pytest.raises(Refused):
                await node.beat()
    store.down = False
    clock.now += 0.2
    await a.beat()  # a is back first: b's last heartbeat is 3 s old, but b did not die, the store was away
    clock.now += 0.1
    await b.beat()
    await beat_for(2.0, clock, a, b)
    assert await store.dead_nodes(clock.now, 1.0) == []
    assert await store.heartbeat("b", clock.now) is True, "b was written off (and would be fenced)"


async def test_a_node_that_stays_silent_is_written_off_once_the_others_have_beaten_steadily_a_node_timeout():
    clock, store = Clock(), MemoryStore()
    a, b = make_node(store, clock, "a"), make_node(store, clock, "b")
    await beat_for(2.0, clock, a, b)
    await a.run(lambda tx: lifecycle.connect(tx, "ann", "b", False))
    await beat_for(1.0, clock, a)  # b died (or stopped) 1 s ago
    assert await store.heartbeat("a", clock.now) is True
    await beat_for(0.4, clock, a)
    assert (await store.agent("ann")).sessions == {}  # type: ignore[union-attr]
    assert await store.heartbeat("b", clock.now) is False  # written off: b would be fenced


async def test_a_node_frozen_past_the_timeout_is_fenced_once_and_rejoins_under_a_new_id():
    clock, store = Clock(), MemoryStore()
    a, b = make_node(store, clock, "a"), make_node(store, clock, "b")
    await beat_for(2.0, clock, a, b)
    await b.run(lambda tx: lifecycle.connect(tx, "ann", b.node_id, False))  # ann's socket on b
    stale = Socket()
    b.sessions.add(stale)
    await beat_for(1.6, clock, a)  # b stands still (SIGSTOP): a writes it off
    assert (await store.agent("ann")).sessions == {}  # type: ignore[union-attr]

    clock.now += 0.2
    await b.beat()  # b wakes: it was written off
    assert stale.failed == [CloseCode.GOING_AWAY]
    assert b.node_id != "b"
    b.sessions.discard(stale)

    # ann comes back on b, under its new id; then her old socket's close is recorded, under the old one
    await b.run(lambda tx: lifecycle.connect(tx, "ann", b.node_id, False))
    await b.run(lambda tx: lifecycle.disconnect(tx, "ann", "b"))
    assert (await store.agent("ann")).sessions == {b.node_id: 1}  # type: ignore[union-attr]

    fresh = Socket()
    b.sessions.add(fresh)
    await beat_for(3.0, clock, a, b)  # and b serves on: not fenced again at every beat
    assert fresh.failed == []
    assert await store.dead_nodes(clock.now, 1.0) == []
    assert (await store.agent("ann")).sessions == {b.node_id: 1}  # type: ignore[union-attr]
