"""A Redis transaction reads its records over several round trips (each miss loads more), and another
node may commit in between. A decision that writes is checked at commit; one that raises (a refusal,
or a fault in the core on records that do not belong together) must be made again on records read in
one atomic step before it is answered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis
from redis.asyncio import Redis

from protocol.codes import ErrorCode
from protocol.model import Channel, EngagementState
from server.core.errors import Refused
from server.core.records import AgentRec, EngagementRec, Offer, OfferRef
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
    await store.transact(lambda _: (None, Changes(agents={"ann": RINGING}, engagements={"e1": OFFERED})))
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
