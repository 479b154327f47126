"""The Redis broker's listener outlives whatever a reconnect throws at it. Seen in the chaos run:
Redis went away again while the node reconnected its subscription, and uvloop refused to write to the
closed transport with a RuntimeError; the listener ended, and its node stayed deaf to every event (no
ring, no assignment reached its agents) while `/readyz` said it was ready."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from protocol.frames import StatusEvent
from protocol.model import AgentStatus
from server.bus.base import Delivery
from server.bus.redis import RedisBroker
from server.core.errors import Refused
from server.redis_pipe import Pipe
from tests.redis_server import RedisServer


async def test_the_listener_survives_a_reconnect_that_fails_oddly_then_files_itself_again_and_delivers(
    private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
):
    client = Redis.from_url(private_redis.url)
    broker = RedisBroker(client, prefix="t", node_id="n1")
    publisher = RedisBroker(Redis.from_url(private_redis.url), prefix="t", node_id="n2")
    await broker.start()
    await publisher.start()
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    await broker.subscribe("agent:ann", got.put_nowait)
    real = Pipe.subscribe
    odd = [RuntimeError("unable to perform operation on <TCPTransport closed=True>")]

    async def flaky(self: Pipe, *args: Any) -> Any:
        if odd and self is broker._pipe:
            raise odd.pop()
        return await real(self, *args)

    monkeypatch.setattr(Pipe, "subscribe", flaky)
    try:
        private_redis.restart()  # loses its data: the `where` sets with the rest
        async with asyncio.timeout(10):
            marker = await got.get()  # told to catch up from the log: events meanwhile were missed
        assert marker.frame is None and not odd  # the odd failure happened, and the listener went on
        assert await client.smembers(broker.keys.where("agent:ann")) == {b"n1"}  # filed again
        assert await broker.ping() is True
        event = StatusEvent(seq=7, status=AgentStatus.READY)
        async with asyncio.timeout(10):
            while True:  # the publisher's own connections may need a try to come back
                try:
                    await publisher.publish([Delivery("agent:ann", event)])
                    break
                except Refused:
                    await asyncio.sleep(0.05)
            assert (await got.get()).frame == event
    finally:
        await broker.close()
        await publisher.close()
        await client.aclose()
        await publisher.redis.aclose()
    assert await broker.ping() is False  # a listener that ended is never reported ready
