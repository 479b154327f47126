"""The shared broker: Redis pub/sub between nodes, this node's hub for its own sockets.

One channel per topic (`sb:{sb}:ev:agent:alice`), subscribed while at least one local socket wants
it. Each delivery is encoded once (MessagePack) and published once, whatever the number of nodes and
sockets that receive it; what a transaction sends is published by the store's commit script itself,
in the same round trip, so an event is never logged without being published. Pub/sub is
at-most-once: when the subscription connection drops, the broker reconnects and re-subscribes by
itself, and then tells every local handler to resync (read what it missed from the store's per-agent
log), which is how nothing is lost across a Redis blip. While Redis is out of reach, `publish` and
`subscribe` raise `Refused(UNAVAILABLE)`, as the store does, so that callers answer with the typed
error (a socket signing in is closed with 1013) rather than fail on a raw connection error; every
failure, and every loss of the subscription connection, is reported to the `on_failure` callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import msgspec
from msgspec.structs import replace
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from protocol.codes import ErrorCode
from protocol.frames import Event, Server, ServerFrame
from server.bus.base import Delivery, Handler, Unsubscribe
from server.bus.hub import Hub
from server.core.errors import Refused
from server.store.redis import Keys

log = logging.getLogger("switchboard.bus")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Server).decode


def _message(data: bytes) -> ServerFrame:
    """`<seq>|<frame>`: the store's commit publishes an agent event with the seq it just gave it
    (the frame itself was encoded before it had one); `0` keeps the frame as it is."""
    head, _, blob = data.partition(b"|")
    frame = _decode(blob)
    seq = int(head)
    return replace(cast(Event, frame), seq=seq) if seq else frame


class RedisBroker:
    """See `Broker`."""

    def __init__(self, client: Redis, *, prefix: str = "sb", node_id: str = "node") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.hub = Hub()
        self._control = self.keys.channel(f"node:{node_id}")
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._ready = False
        self._failure_callbacks: list[Callable[[str], None]] = []

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self._control)
        self._ready = True
        self._listener = asyncio.create_task(self._listen(), name="switchboard-pubsub")

    def on_resync(self, callback: Callable[[], None]) -> None:
        self.hub.resync_callbacks.append(callback)

    def on_failure(self, callback: Callable[[str], None]) -> None:
        self._failure_callbacks.append(callback)

    def _failed(self, operation: str) -> None:
        for callback in self._failure_callbacks:
            callback(operation)

    def _unavailable(self, operation: str, exc: Exception) -> Refused:
        """Report a failed operation and make the typed error its caller answers with."""
        self._failed(operation)
        return Refused(ErrorCode.UNAVAILABLE, f"event broker unreachable ({type(exc).__name__})")

    async def publish(self, deliveries: Sequence[Delivery]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for delivery in deliveries:
                    pipe.publish(self.keys.channel(delivery.topic), b"0|" + _encode(delivery.frame))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable("publish", exc) from exc

    async def subscribe(self, topic: str, handler: Handler) -> Unsubscribe:
        if self.hub.add(topic, handler) and self._pubsub is not None:
            try:
                await self._pubsub.subscribe(self.keys.channel(topic))
            except (RedisError, OSError) as exc:
                # not subscribed: forget the handler, so the next socket for the topic subscribes afresh
                self.hub.remove(topic, handler)
                raise self._unavailable("subscribe", exc) from exc

        async def unsubscribe() -> None:
            if self.hub.remove(topic, handler) and self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(self.keys.channel(topic))
                except (RedisError, OSError):
                    # a socket going away must not fail on it: at worst the channel's events keep
                    # arriving here for no handler until the connection is re-established
                    self._failed("unsubscribe")

        return unsubscribe

    async def _listen(self) -> None:
        assert self._pubsub is not None
        pubsub = self._pubsub
        prefix = len(self.keys.channel(""))
        backoff = 0.05
        while True:
            try:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError, RuntimeError) as exc:
                # RuntimeError: the event loop refusing to write to a transport closed under a reconnect
                # (uvloop: "unable to perform operation on <TCPTransport closed=True>"), when Redis goes
                # away again as the connection comes back. Whatever ends this loop leaves the node
                # subscribed to nothing, deaf to every event while it says it is ready.
                if self._ready:
                    log.warning("lost the pub/sub connection (%s); reconnecting", type(exc).__name__)
                    self._failed("connection")
                self._ready = False
                if pubsub.connection is not None:  # the next attempt connects (and re-subscribes) afresh
                    with contextlib.suppress(RedisError, OSError, RuntimeError):
                        await pubsub.connection.disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if not self._ready:
                # get_message reconnected and re-subscribed every channel; what was published in
                # between is in the store's logs, so every local handler is asked to catch up.
                self._ready = True
                backoff = 0.05
                log.warning("pub/sub reconnected; resyncing %d topics", len(self.hub.topics()))
                self.hub.resync()
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            topic = (channel.decode() if isinstance(channel, bytes) else channel)[prefix:]
            try:
                frame = _message(message["data"])
            except (msgspec.DecodeError, ValueError):
                log.error("undecodable event on %s dropped", topic)
                continue
            self.hub.dispatch(Delivery(topic, frame))

    async def ping(self) -> bool:
        """Subscribed and listening: a listener that ended (whatever the reason) leaves the node deaf."""
        return self._ready and self._listener is not None and not self._listener.done()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()


if TYPE_CHECKING:
    from server.bus.base import Broker

    _broker: Broker = RedisBroker(Redis())
