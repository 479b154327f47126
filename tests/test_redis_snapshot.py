"""A Redis transaction reads its records over several round trips (each miss loads more), and another
node may commit in between. A decision that writes is checked at commit; one that raises (a refusal,
or a fault in the core on records that do not belong together) must be made again on records read in
one atomic step before it is answered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
import redis
from redis.asyncio import Redis

from protocol.codes import ErrorCode
from protocol.model import Channel, EngagementState
from server.core.errors import Refused
from server.core.records import AgentRec, EngagementRec, Offer, OfferRef, QueueRec
from server.core.tx import Changes, Snapshot
from server.store.redis import RedisStore
from tests.redis_server import RedisServer

RINGING = AgentRec(id="ann", offers={"e1-o1": OfferRef("e1", Channel.VOICE, 2000.0)})
OFFERED = EngagementRec(
    id="e1",
    queue="calls",
    channel=Channel.VOICE,
    state=EngagementState.OFFERED,
    created_at=1000.0,
    offers=(Offer("e1-o1", "ann", 2000.0),),
)


@pytest.fixture
async def store(shared_redis: RedisServer) -> AsyncIterator[RedisStore]:
    redis_store = RedisStore(Redis.from_url(shared_redis.url), prefix=f"t{uuid.uuid4().hex[:8]}")
    yield redis_store
    await redis_store.close()


async def test_a_decision_that_raises_on_records_read_apart_is_made_again_on_records_read_together(
    store: RedisStore, shared_redis: RedisServer
):
    # written by another node, so that this one reads them from Redis rather than from what it knows
    writer = RedisStore(Redis.from_url(shared_redis.url), prefix=store.keys.base.split(":")[0])
    await writer.transact(lambda _: (None, Changes(agents={"ann": RINGING}, engagements={"e1": OFFERED})))
    await writer.close()
    other_node = redis.Redis.from_url(shared_redis.url)
    encode = msgspec.msgpack.Encoder().encode
    timed_out = msgspec.structs.replace(OFFERED, state=EngagementState.QUEUED, offers=())
    seen: list[tuple[bool, bool]] = []

    def accept(snapshot: Snapshot) -> tuple[None, Changes]:
        """What `lifecycle.accept` reads: the agent's offer, then that offer on its engagement."""
        agent = snapshot.agent("ann")  # read in a first round trip
        assert agent is not None
        if not seen:  # meanwhile another node times the ring out, on both records, in one commit
            other_node.hset(store.keys.agent("ann"), mapping={"v": 2, "d": encode(AgentRec(id="ann"))})
            other_node.hset(store.keys.engagement("e1"), mapping={"v": 2, "d": encode(timed_out)})
        eng = snapshot.engagement("e1")  # read in a second round trip: newer than the agent
        assert eng is not None
        seen.append(("e1-o1" in agent.offers, any(o.id == "e1-o1" for o in eng.offers)))
        if "e1-o1" not in agent.offers:
            raise Refused(ErrorCode.NOT_FOUND, "No running offer")
        next(o for o in eng.offers if o.id == "e1-o1")  # records that agree always have it
        return None, Changes()

    try:
        with pytest.raises(Refused) as refused:
            await store.transact(accept)
    finally:
        other_node.close()
    assert refused.value.code is ErrorCode.NOT_FOUND  # the ring is gone, and not an internal error
    # decided once on the agent of before with the engagement of after, then again on both of after
    assert seen == [(True, False), (False, False)]


async def test_records_this_node_remembers_never_hide_another_nodes_commit(
    store: RedisStore, shared_redis: RedisServer
):
    """A node starts its transactions from the records it last read or wrote; a record another node
    changed since fails the commit's version check, and the decision is made again on it as it is."""
    await store.transact(lambda _: (None, Changes(agents={"ann": RINGING})))
    other = RedisStore(Redis.from_url(shared_redis.url), prefix=store.keys.base.split(":")[0])
    await other.transact(lambda snap: (None, Changes(agents={"ann": AgentRec(id="ann", reason="lunch")})))
    await other.close()
    seen: list[str | None] = []

    def note(snapshot: Snapshot) -> tuple[None, Changes]:
        agent = snapshot.agent("ann")
        assert agent is not None
        seen.append(agent.reason)
        return None, Changes(agents={"ann": msgspec.structs.replace(agent, idle_since=5.0)})

    await store.transact(note)
    assert seen[-1] == "lunch"  # decided last on the other node's record, not on the remembered one
    final = await store.agent("ann")
    assert final is not None and final.reason == "lunch" and final.idle_since == 5.0


async def test_a_decision_that_writes_nothing_is_never_answered_from_remembered_records(
    store: RedisStore, shared_redis: RedisServer
):
    """A read-only decision has no commit to check its versions: it is made on records read afresh."""
    await store.transact(lambda _: (None, Changes(agents={"ann": RINGING})))
    other = RedisStore(Redis.from_url(shared_redis.url), prefix=store.keys.base.split(":")[0])
    await other.transact(lambda snap: (None, Changes(agents={"ann": AgentRec(id="ann")})))
    await other.close()

    def offers(snapshot: Snapshot) -> tuple[list[str], Changes]:
        agent = snapshot.agent("ann")
        return (list(agent.offers) if agent else []), Changes()

    assert (await store.transact(offers)).result == []  # the ring the other node ended is gone here too


async def test_a_decision_that_relied_on_a_queues_ranking_is_made_again_when_it_changes_meanwhile(
    store: RedisStore, shared_redis: RedisServer
):
    """A queue's ranking says who could take one of its engagements. Another node ranks an agent in
    `calls` while this one decides: a decision that only read the ranking commits as it is; one that
    relied on it (no one free: the engagement waits) is made again, and then sees that agent."""
    other_node = redis.Redis.from_url(shared_redis.url)
    for relied, attempts in ((set[str](), 1), ({"calls"}, 2)):
        seen: list[list[str]] = []
        name = f"agent-{attempts}"

        def decide(
            snapshot: Snapshot, relied: set[str] = relied, seen: list[list[str]] = seen, name: str = name
        ) -> tuple[None, Changes]:
            seen.append(snapshot.ranked("calls", None, 5))
            if len(seen) == 1:  # meanwhile the other node's commit ranks someone, bumping the version
                other_node.zadd(store.keys.ranking("calls"), {"0" * 32 + name: 0})
                other_node.hincrby(store.keys.ranking_version("calls"), "v", 1)
            return None, Changes(queues={"calls": QueueRec(id="calls", rr_last=str(len(seen)))}, rankings=relied)

        await store.transact(decide)
        assert len(seen) == attempts
        assert any(entry.endswith(name) for entry in seen[-1]) == (attempts == 2)
    other_node.close()


async def test_transactions_reading_the_same_queues_in_opposite_orders_both_finish(store: RedisStore):
    """Transactions on one node take turns per queue; two that each hold one queue and need the
    other's must not wait for each other forever."""
    reads: list[str] = []

    def both(first: str, second: str) -> Callable[[Snapshot], tuple[None, Changes]]:
        def decide(snapshot: Snapshot) -> tuple[None, Changes]:
            snapshot.queue(first)
            reads.append(first)
            snapshot.queue(second)
            return None, Changes(queues={first: QueueRec(id=first, rr_last=second)})

        return decide

    async with asyncio.timeout(10):
        await asyncio.gather(store.transact(both("q1", "q2")), store.transact(both("q2", "q1")))
    assert {"q1", "q2"} <= set(reads)  # they did meet halfway
    assert [(await store.queue(q)) for q in ("q1", "q2")] == [
        QueueRec(id="q1", rr_last="q2"),
        QueueRec(id="q2", rr_last="q1"),
    ]
