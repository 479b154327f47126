"""What only the Redis backends do: timer leases, outages as typed errors, pub/sub that heals itself."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protocol.codes import ErrorCode
from protocol.frames import StatusEvent
from protocol.model import AgentStatus
from server.app import create_app
from server.bus.base import Delivery
from server.bus.redis import RedisBroker
from server.core.errors import Refused
from server.core.tx import Changes
from server.store.redis import RedisStore
from tests.redis_server import RedisServer
from tests.support import agent, make_config, serving, token, voice_queue


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
                except Refused:  # the publisher's pool reconnects on the next try
                    await asyncio.sleep(0.05)
        assert (await asyncio.wait_for(got.get(), 5)).frame == later
        await unsubscribe()
    finally:
        await broker.close()
        await publisher.close()
        await client.aclose()
        await publisher.redis.aclose()


async def test_a_node_files_itself_once_for_a_topic_however_many_local_sockets_want_it(shared_redis: RedisServer):
    """A topic's events are addressed to the nodes in its `where` set; the node is in it while at least one
    local socket wants the topic, whatever the topic (an agent's events, supervisors' notices)."""
    client = Redis.from_url(shared_redis.url)
    broker = RedisBroker(client, prefix=f"t{uuid.uuid4().hex[:8]}", node_id="n1")
    await broker.start()

    async def nodes(topic: str) -> set[bytes]:
        return set(await client.smembers(broker.keys.where(topic)))  # type: ignore[misc]

    try:
        for topic in ("agent:ann", "supervisors"):
            first = await broker.subscribe(topic, lambda d: None)
            second = await broker.subscribe(topic, lambda d: None)
            assert await nodes(topic) == {b"n1"}
            await first()
            assert await nodes(topic) == {b"n1"}
            await second()
            assert await nodes(topic) == set()
    finally:
        await broker.close()
        await client.aclose()


async def test_an_event_for_a_topic_nobody_wants_is_sent_nowhere_and_one_somebody_wants_reaches_them(
    shared_redis: RedisServer,
):
    client = Redis.from_url(shared_redis.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    listener = RedisBroker(client, prefix=prefix, node_id="n1")
    publisher = RedisBroker(Redis.from_url(shared_redis.url), prefix=prefix, node_id="n2")
    await listener.start()
    await publisher.start()
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    watched = asyncio.Queue[Delivery]()
    try:
        await listener.subscribe("agent:ann", got.put_nowait)
        await publisher.subscribe("watch:e-1", watched.put_nowait)  # on the publisher's node only
        first, second = StatusEvent(seq=1, status=AgentStatus.READY), StatusEvent(seq=2, status=AgentStatus.READY)
        await publisher.publish([Delivery("agent:bob", first), Delivery("agent:ann", second)])
        assert (await asyncio.wait_for(got.get(), 5)).frame == second  # bob's went nowhere: nobody wants it
        await publisher.publish([Delivery("watch:e-1", first)])
        assert (await asyncio.wait_for(watched.get(), 5)).frame == first
        assert got.empty()
    finally:
        await listener.close()
        await publisher.close()
        await client.aclose()
        await publisher.redis.aclose()


async def test_while_redis_is_down_the_broker_refuses_as_unavailable_and_subscribes_nothing(
    private_redis: RedisServer,
):
    client = Redis.from_url(private_redis.url)
    broker = RedisBroker(client, prefix="bus", node_id="n1")
    failures: list[str] = []
    broker.on_failure(failures.append)
    await broker.start()
    try:
        private_redis.stop(kill=True)
        async with asyncio.timeout(10):
            while await broker.ping():
                await asyncio.sleep(0.05)  # the listener notices the lost connection
        assert failures == ["connection"]
        with pytest.raises(Refused) as subscribing:
            await broker.subscribe("agent:ann", lambda d: None)
        assert subscribing.value.code == ErrorCode.UNAVAILABLE
        assert broker.hub.topics() == []  # the failed subscription left no handler behind
        with pytest.raises(Refused) as publishing:
            await broker.publish([Delivery("agent:ann", StatusEvent(seq=1, status=AgentStatus.READY))])
        assert publishing.value.code == ErrorCode.UNAVAILABLE
        assert failures == ["connection", "subscribe", "publish"]

        private_redis.start()
        got: asyncio.Queue[Delivery] = asyncio.Queue()
        async with asyncio.timeout(10):
            while True:  # the pub/sub connection may need a try to come back
                try:
                    unsubscribe = await broker.subscribe("agent:ann", got.put_nowait)
                    break
                except Refused:
                    await asyncio.sleep(0.05)
        assert set(await client.smembers(broker.keys.where("agent:ann"))) == {b"n1"}  # type: ignore[misc]
        event = StatusEvent(seq=2, status=AgentStatus.NOT_READY, reason="lunch")
        await broker.publish([Delivery("agent:ann", event)])
        async with asyncio.timeout(5):
            while (delivery := await got.get()).frame is None:  # resync markers of the reconnect
                pass
        assert delivery.frame == event
        await unsubscribe()
    finally:
        await broker.close()
        await client.aclose()


async def test_an_agent_signing_in_while_redis_is_down_is_told_to_try_again_later(private_redis: RedisServer):
    """The node stays up through the outage, says it is not ready, counts the failures, and signs the
    agent in once Redis is back."""
    config = make_config([voice_queue("calls")], [agent("ann", "calls")])
    app = create_app(config, redis_url=private_redis.url, redis_prefix="down")
    async with serving(app) as live, httpx.AsyncClient(base_url=live.http, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200
        private_redis.stop(kill=True)
        async with asyncio.timeout(10):
            while (await http.get("/readyz")).status_code != 503:
                await asyncio.sleep(0.05)
        assert (await http.get("/readyz")).json()["code"] == "unavailable"

        async with connect(f"{live.ws}/v1/agent", subprotocols=["switchboard.v1.json"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert (await http.get("/healthz")).status_code == 200  # the node is still up
        metrics = (await http.get("/metrics")).text
        assert 'switchboard_broker_errors_total{operation="subscribe"} 1.0' in metrics
        assert 'switchboard_broker_errors_total{operation="connection"} 1.0' in metrics

        private_redis.start()
        async with asyncio.timeout(15):
            while (await http.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.05)
        async with connect(f"{live.ws}/v1/agent", subprotocols=["switchboard.v1.json"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (welcome["type"], welcome["status"]) == ("welcome", "not_ready")
