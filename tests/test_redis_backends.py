"""What only the Redis backends do: timer leases, outages as typed errors, pub/sub that heals itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from protocol.codes import ErrorCode
from protocol.frames import StatusEvent
from protocol.model import AgentStatus
from server.bus.base import Delivery
from server.bus.redis import RedisBroker
from server.core.errors import Refused
from server.core.tx import Changes
from server.store.redis import RedisStore
from tests.redis_server import RedisServer


@pytest.fixture
async def store(shared_redis: RedisServer) -> AsyncIterator[RedisStore]:
    s = RedisStore(Redis.from_url(shared_redis.url), prefix=f"t{uuid.uuid4().hex[:8]}")
    yield s
    await s.close()


async def test_a_claimed_timer_that_is_never_confirmed_comes_back_after_its_lease(store: RedisStore):
    await store.transact(lambda snapshot: (None, Changes(arm={"t1": 10.0})))
    assert await store.claim_due(10.0, 10) == ["t1"]  # this claimer "dies" before confirming
    assert await store.claim_due(20.0, 10) == []  # still leased
    assert await store.claim_due(41.0, 10) == ["t1"]  # the lease (30 s) ran out: another node fires it
    await store.done(["t1"])
    assert await store.claim_due(1000.0, 10) == []


async def test_a_redis_outage_is_a_typed_unavailable_error_and_recovery_is_automatic(private_redis: RedisServer):
    store = RedisStore(Redis.from_url(private_redis.url), prefix="outage")
    try:
        await store.transact(lambda snapshot: (None, Changes(arm={"t": 1.0})))
        private_redis.stop(kill=True)
        assert await store.ping() is False
        with pytest.raises(Refused) as caught:
            await store.agent("ann")
        assert caught.value.code == ErrorCode.UNAVAILABLE
        with pytest.raises(Refused):
            await store.transact(lambda snapshot: (None, Changes(arm={"t": 2.0})))
        private_redis.start()
        assert await store.ping() is True
        assert await store.agent("ann") is None
    finally:
        await store.close()


async def test_the_broker_resubscribes_after_redis_restarts_and_asks_handlers_to_resync(private_redis: RedisServer):
    client = Redis.from_url(private_redis.url)
    broker = RedisBroker(client, prefix="bus", node_id="n1")
    publisher = RedisBroker(Redis.from_url(private_redis.url), prefix="bus", node_id="n2")
    await broker.start()
    await publisher.start()
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    resynced = asyncio.Event()
    broker.on_resync(resynced.set)
    try:
        unsubscribe = await broker.subscribe("agent:ann", got.put_nowait)
        event = StatusEvent(seq=1, status=AgentStatus.READY)
        await publisher.publish([Delivery("agent:ann", event)])
        first = await asyncio.wait_for(got.get(), 5)
        assert first.frame == event and first.topic == "agent:ann"

        private_redis.restart()
        await asyncio.wait_for(resynced.wait(), 10)
        marker = await asyncio.wait_for(got.get(), 5)
        assert marker.frame is None and marker.topic == "agent:ann"
        assert await broker.ping() is True
        later = StatusEvent(seq=2, status=AgentStatus.NOT_READY, reason="lunch")
        async with asyncio.timeout(10):
            while True:  # the publisher's own connection may need a try to come back
                try:
                    await publisher.publish([Delivery("agent:ann", later)])
                    break
                except RedisError:  # the publisher's pool reconnects on the next try
                    await asyncio.sleep(0.05)
        assert (await asyncio.wait_for(got.get(), 5)).frame == later
        await unsubscribe()
    finally:
        await broker.close()
        await publisher.close()
        await client.aclose()
        await publisher.redis.aclose()


async def test_a_node_subscribes_to_a_topic_once_however_many_local_sockets_want_it(shared_redis: RedisServer):
    client = Redis.from_url(shared_redis.url)
    broker = RedisBroker(client, prefix=f"t{uuid.uuid4().hex[:8]}", node_id="n1")
    await broker.start()
    channel = broker.keys.channel("agent:ann")

    async def subscribers() -> int:
        return int(dict(await client.pubsub_numsub(channel))[channel.encode()])

    try:
        first = await broker.subscribe("agent:ann", lambda d: None)
        second = await broker.subscribe("agent:ann", lambda d: None)
        assert await subscribers() == 1
        await first()
        assert await subscribers() == 1
        await second()
        async with asyncio.timeout(5):
            while await subscribers() != 0:  # UNSUBSCRIBE is asynchronous on the server side
                await asyncio.sleep(0.01)
    finally:
        await broker.close()
        await client.aclose()
