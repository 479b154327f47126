"""The `Store` contract, run against every implementation: adding a store is adding a fixture param."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from msgspec.structs import replace
from redis.asyncio import Redis

from protocol.frames import StatusEvent
from protocol.model import AgentStatus, Channel, EngagementState
from server.core.records import AgentRec, EngagementRec, QueueRec, WaitEntry
from server.core.tx import Changes, Snapshot
from server.store.base import Store
from server.store.memory import MemoryStore
from server.store.redis import RedisStore
from tests.redis_server import RedisServer

StoreFactory = Callable[[int], Store]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    made: list[Store] = []

    def make(log_size: int = 100) -> Store:
        store: Store
        if request.param == "redis":
            server: RedisServer = request.getfixturevalue("shared_redis")
            store = RedisStore(Redis.from_url(server.url), prefix=f"t{uuid.uuid4().hex[:8]}", log_size=log_size)
        else:
            store = MemoryStore(log_size)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def changes(**fields: Any) -> Callable[[Snapshot], tuple[None, Changes]]:
    return lambda snapshot: (None, Changes(**fields))


def status(reason: str) -> StatusEvent:
    return StatusEvent(status=AgentStatus.NOT_READY, reason=reason)


async def test_a_transaction_writes_records_and_reads_see_them(make_store: StoreFactory):
    store = make_store()
    eng = EngagementRec(id="e1", queue="q", channel=Channel.VOICE, state=EngagementState.QUEUED, created_at=1.0)
    await store.transact(
        changes(
            agents={"a": AgentRec(id="a", status=AgentStatus.READY)},
            engagements={"e1": eng},
            queues={"q": QueueRec(id="q", waiting=(WaitEntry("e1", 0, 1.0),))},
        )
    )
    assert (await store.agent("a")) == AgentRec(id="a", status=AgentStatus.READY)
    assert (await store.engagement("e1")) == eng
    assert (await store.queue("q")).waiting == (WaitEntry("e1", 0, 1.0),)  # type: ignore[union-attr]
    assert await store.agents(["a", "nobody"]) == [AgentRec(id="a", status=AgentStatus.READY), None]
    assert await store.engagement("e2") is None


async def test_the_snapshot_reads_committed_records(make_store: StoreFactory):
    store = make_store()
    await store.transact(changes(agents={"a": AgentRec(id="a", idle_since=2.0)}))

    def read(snapshot: Snapshot) -> tuple[int, Changes]:
        agent = snapshot.agent("a")
        assert agent is not None and snapshot.agent("b") is None and snapshot.queue("q") is None
        return agent.idle_since, Changes()

    assert (await store.transact(read)).result == 2.0


async def test_a_failing_decision_applies_nothing(make_store: StoreFactory):
    store = make_store()

    def fail(snapshot: Snapshot) -> tuple[None, Changes]:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await store.transact(fail)
    assert await store.agent("a") is None
    assert await store.latest_seq("a") == 0
    assert await store.next_due() is None


async def test_events_get_consecutive_seqs_per_agent_in_commit_order(make_store: StoreFactory):
    store = make_store()
    first = await store.transact(changes(events=[("a", status("1")), ("b", status("x")), ("a", status("2"))]))
    assert [(agent, e.seq, e.reason) for agent, e in first.events] == [("a", 1, "1"), ("b", 1, "x"), ("a", 2, "2")]
    second = await store.transact(changes(events=[("a", status("3"))]))
    assert second.events[0][1].seq == 3
    assert await store.latest_seq("a") == 3
    assert await store.latest_seq("b") == 1
    replay = await store.replay("a", 1)
    assert replay is not None and [(e.seq, e.reason) for e in replay] == [(2, "2"), (3, "3")]
    assert await store.replay("a", 3) == []
    assert await store.replay("a", 7) is None  # a seq from some other numbering


async def test_the_log_keeps_the_last_events_and_says_when_older_ones_are_gone(make_store: StoreFactory):
    store = make_store(log_size=3)
    for i in range(250):
        await store.transact(changes(events=[("a", status(str(i)))]))
    kept = await store.replay("a", 247)
    assert kept is not None and [e.seq for e in kept] == [248, 249, 250]
    assert [e.reason for e in kept] == ["247", "248", "249"]
    assert await store.replay("a", 1) is None  # far older than the log (which keeps *at least* 3)
    assert await store.replay("a", 0) is None


async def claim(store: Store, now: float, limit: int = 10) -> list[str]:
    """Claim what is due and confirm it fired, as a node does."""
    keys = await store.claim_due(now, limit)
    await store.done(keys)
    return keys


async def test_timers_fire_once_at_or_after_their_due_time(make_store: StoreFactory):
    store = make_store()
    await store.transact(changes(arm={"t1": 10.0, "t2": 20.0, "t3": 5.0}))
    assert await store.next_due() == 5.0
    assert await claim(store, 4.9) == []
    assert await claim(store, 10.0) == ["t3", "t1"]
    assert await claim(store, 10.0) == []
    assert await store.next_due() == 20.0
    assert await claim(store, 1000.0) == ["t2"]
    assert await claim(store, 2000.0) == []


async def test_timers_can_be_disarmed_and_rearmed(make_store: StoreFactory):
    store = make_store()
    await store.transact(changes(arm={"t1": 10.0, "t2": 20.0, "t3": 30.0}))
    await store.transact(changes(disarm={"t1"}, arm={"t2": 40.0, "t3": 15.0}))
    assert await claim(store, 35.0) == ["t3"]
    assert await claim(store, 100.0) == ["t2"]
    assert await store.next_due() is None


async def test_claim_due_honours_its_limit(make_store: StoreFactory):
    store = make_store()
    await store.transact(changes(arm={f"t{i}": float(i) for i in range(5)}))
    first = await claim(store, 10.0, 2)
    rest = await claim(store, 10.0)
    assert len(first) == 2 and sorted(first + rest) == [f"t{i}" for i in range(5)]


async def test_concurrent_transactions_never_lose_an_update(make_store: StoreFactory):
    store = make_store()

    def increment(snapshot: Snapshot) -> tuple[None, Changes]:
        agent = snapshot.agent("a") or AgentRec(id="a")
        return None, Changes(agents={"a": replace(agent, idle_since=agent.idle_since + 1)})

    await asyncio.gather(*(store.transact(increment) for _ in range(50)))
    assert (await store.agent("a")).idle_since == 50  # type: ignore[union-attr]


async def test_nodes_heartbeat_and_the_silent_ones_are_reported(make_store: StoreFactory):
    store = make_store()
    assert await store.heartbeat("n1", 100.0) is True
    await store.heartbeat("n2", 104.0)
    await store.heartbeat("n3", 104.0)
    assert await store.dead_nodes(106.0, 5.0) == ["n1"]
    await store.bury("n1")
    await store.forget_node("n3")  # stopped cleanly
    assert await store.dead_nodes(200.0, 5.0) == ["n2"]
    assert await store.heartbeat("n1", 201.0) is False  # written off meanwhile: it must know
    assert await store.heartbeat("n3", 201.0) is True


async def test_epoch_and_health(make_store: StoreFactory):
    store = make_store()
    assert await store.epoch() == await store.epoch()
    assert await store.epoch() != await make_store().epoch()
    assert await store.ping() is True
