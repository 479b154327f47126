"""The Redis broker's pub/sub listener outlives whatever a reconnect throws at it. Seen in the chaos run:
Redis went away again while redis-py reconnected the pub/sub connection, and uvloop refused to write to
the closed transport with a RuntimeError; the listener ended, and its node stayed deaf to every event
(no ring, no assignment reached its agents) while `/readyz` said it was ready."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from protocol.frames import StatusEvent
from protocol.model import AgentStatus
from server.bus.base import Delivery
from server.bus.redis import RedisBroker
from server.redis_layout import frame


class Connection:
    def __init__(self) -> None:
        self.disconnects = 0

    async def disconnect(self) -> None:
        self.disconnects += 1


class PubSub:
    """What the broker uses of redis-py's PubSub; what `get_message` returns (or raises) is fed to `inbox`."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any] | Exception] = asyncio.Queue()
        self.connection = Connection()
        self.channels: set[str] = set()

    async def subscribe(self, *channels: str) -> None:
        self.channels.update(channels)

    async def unsubscribe(self, *channels: str) -> None:
        self.channels.difference_update(channels)

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(timeout):
                item = await self.inbox.get()
        except TimeoutError:
            return None
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        return None


class Pipeline:
    """The broker files its agents in their `where` sets again after a reconnect: this one records it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def sadd(self, key: str, member: str) -> None:
        self.client.where.setdefault(key, set()).add(member)

    def srem(self, key: str, member: str) -> None:
        self.client.where.get(key, set()).discard(member)

    async def execute(self) -> None:
        return None


class Client:
    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        self.where: dict[str, set[str]] = {}

    def pubsub(self) -> PubSub:
        return self._pubsub

    def register_script(self, text: str) -> None:
        return None

    async def sadd(self, key: str, member: str) -> None:
        self.where.setdefault(key, set()).add(member)

    def pipeline(self, transaction: bool) -> Pipeline:
        return Pipeline(self)


async def test_the_listener_survives_a_reconnect_that_fails_on_a_closed_transport_and_delivers_again():
    pubsub = PubSub()
    client = Client(pubsub)
    broker = RedisBroker(client, prefix="t", node_id="n1")  # type: ignore[arg-type]
    await broker.start()
    got: list[Delivery] = []
    await broker.subscribe("agent:ann", got.append)
    where = broker.keys.where("agent:ann")
    client.where.clear()  # as a Redis that lost its data would have it

    pubsub.inbox.put_nowait(RuntimeError("unable to perform operation on <TCPTransport closed=True>"))
    event = StatusEvent(status=AgentStatus.READY)
    channel = broker.keys.node_channel("n1").encode()
    batch = frame("agent:ann", 7, msgspec.msgpack.encode(event))
    pubsub.inbox.put_nowait({"type": "message", "channel": channel, "data": batch})
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    try:
        # told to catch up from the log (events published meanwhile were missed), then live again
        assert [d.frame for d in got] == [None, msgspec.structs.replace(event, seq=7)]
        assert pubsub.connection.disconnects == 1  # the broken connection dropped, for a clean one
        assert client.where == {where: {"n1"}}  # back in the agent's `where` set after the reconnect
        assert await broker.ping() is True
    finally:
        await broker.close()
    assert await broker.ping() is False  # a listener that ended is never reported ready
