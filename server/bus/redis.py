"""The shared broker: Redis pub/sub between nodes, this node's hub for its own sockets.

Events reach the nodes that have a socket wanting them: a node puts itself in a topic's `where` set
when its first local socket subscribes to the topic (an agent's events, supervisors' notices, a
watched engagement, a consumer's conversation) and takes itself out when the last one leaves; the
store's commit script sends each event to the channel of every node in the set, in the same atomic
step as the state change, batched with the rest of its group (one message per node per commit call:
`server/redis_layout.py`). Each node listens to its own channel only, and nothing is published for a
topic no socket wants (a call nobody watches). Pub/sub is at-most-once:
when the subscription connection drops, the broker reconnects and re-subscribes by itself, puts
itself back in the `where` sets (a Redis that lost its data lost them too), and then tells every local
handler to resync (read what it missed from the store's per-agent log), which is how nothing is lost
across a Redis blip. While Redis is out of reach, `publish` and `subscribe` raise
`Refused(UNAVAILABLE)`, as the store does, so that callers answer with the typed error (a socket
signing in is closed with 1013) rather than fail on a raw connection error; every failure, and every
loss of the subscription connection, is reported to the `on_failure` callbacks.
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
from redis.exceptions import RedisError

from protocol.codes import ErrorCode
from protocol.frames import Event, Server, ServerFrame
from server.bus.base import Delivery, Handler, Unsubscribe
from server.bus.hub import Hub
from server.core.errors import Refused
from server.redis_layout import Keys, entries, script
from server.redis_pipe import Pipe, Subscription

log = logging.getLogger("switchboard.bus")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Server).decode


def _deliveries(message: bytes) -> list[Delivery]:
    """The deliveries of one batch: an agent event gets the seq the commit gave it (its frame was
    encoded before it had one); seq 0 keeps the frame as it is."""
    out = []
    for topic, seq, blob in entries(message):
        frame: ServerFrame = _decode(blob)
        out.append(Delivery(topic, replace(cast(Event, frame), seq=seq) if seq else frame))
    return out


class RedisBroker:
    """See `Broker`."""

    def __init__(self, client: Redis, *, prefix: str = "sb", node_id: str = "node") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.hub = Hub()
        self.node_id = node_id
        self._inbox = self.keys.node_channel(node_id)
        self._publish = client.register_script(script("publish.lua", with_routing=True))
        self._pipe = Pipe(client)
        self._subscription: Subscription | None = None
        self._listener: asyncio.Task[None] | None = None
        self._ready = False
        self._failure_callbacks: list[Callable[[str], None]] = []

    async def start(self) -> None:
        self._subscription = await self._pipe.subscribe(self._inbox, self._received)
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
        """Deliveries no commit published (the store publishes what it commits): routed as the commit
        routes them, in one call."""
        plan: list[list[Any]] = []
        frames: list[bytes] = []
        at = 0
        for delivery in deliveries:
            frames.append(_encode(delivery.frame))
            plan.append([delivery.topic, self.keys.where(delivery.topic), at, len(frames[-1])])
            at += len(frames[-1])
        try:
            await self._publish(keys=[self.keys.timers], args=[self.keys.channels, _encode(plan), b"".join(frames)])
        except (RedisError, OSError) as exc:
            raise self._unavailable("publish", exc) from exc

    async def subscribe(self, topic: str, handler: Handler) -> Unsubscribe:
        node = self.node_id  # the id it is filed under, should the node take another meanwhile
        if self.hub.add(topic, handler):
            try:
                await self._listen_to(topic, node)
            except (RedisError, OSError) as exc:
                # not subscribed: forget the handler, so the next socket for the topic subscribes afresh
                self.hub.remove(topic, handler)
                raise self._unavailable("subscribe", exc) from exc

        async def unsubscribe() -> None:
            if self.hub.remove(topic, handler):
                try:
                    await self._stop_listening(topic, node)
                except (RedisError, OSError):
                    # a socket going away must not fail on it: at worst the topic's events keep
                    # arriving here for no handler until the connection is re-established
                    self._failed("unsubscribe")

        return unsubscribe

    async def _listen_to(self, topic: str, node: str) -> None:
        """Events of a topic come to this node's channel once it is in the topic's `where` set."""
        if not self._ready:  # this node's channel is not listened to: the topic's events would be lost
            raise RedisError("the pub/sub connection is down")
        await self.redis.sadd(self.keys.where(topic), node)

    async def _stop_listening(self, topic: str, node: str) -> None:
        await self.redis.srem(self.keys.where(topic), node)

    async def join(self, node_id: str) -> None:
        """The node goes on under a new id (it was written off while alive): hear its agents' events on
        the new id's channel, and file the agents it still listens for under it."""
        old, self.node_id = self.node_id, node_id
        self._inbox = self.keys.node_channel(node_id)
        try:
            if self._subscription is not None:
                await self._subscription.add(self._inbox)
                await self._subscription.drop(self.keys.node_channel(old))
            await self._refile(old)
        except (RedisError, OSError) as exc:
            raise self._unavailable("subscribe", exc) from exc

    async def _refile(self, old: str | None = None) -> None:
        """Put this node in the `where` set of every topic it listens to (taking `old` out)."""
        topics = self.hub.topics()
        if not topics:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for topic in topics:
                if old is not None:
                    pipe.srem(self.keys.where(topic), old)
                pipe.sadd(self.keys.where(topic), self.node_id)
            await pipe.execute()

    def _received(self, channel: bytes, message: bytes) -> None:
        """A batch on this node's channel, straight from the socket's reader: every delivery dispatched."""
        try:
            deliveries = _deliveries(message)
        except (msgspec.DecodeError, ValueError):
            log.error("undecodable events on %s dropped", channel.decode(errors="replace"))
            return
        dispatch = self.hub.dispatch
        for delivery in deliveries:
            dispatch(delivery)

    async def _listen(self) -> None:
        """Watch the subscription; when it is lost, subscribe again (backing off while Redis is out of
        reach), file this node back in every `where` set (a Redis that lost its data lost them), and ask
        every local handler to catch up from the log (pub/sub kept nothing meanwhile)."""
        backoff = 0.05
        while True:
            if self._subscription is not None:
                await self._subscription.closed
                log.warning("lost the pub/sub connection; reconnecting")
                self._failed("connection")
            self._ready = False
            self._subscription = None
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                try:
                    subscription = await self._pipe.subscribe(self._inbox, self._received)
                except (RedisError, OSError, RuntimeError):
                    # RuntimeError: the event loop refusing to write to a transport closed under a
                    # reconnect (uvloop), when Redis goes away again as the connection comes back.
                    # Whatever ended this loop would leave the node deaf while it says it is ready.
                    continue
                try:
                    await self._refile()
                except (RedisError, OSError):
                    subscription.close()
                    continue
                break
            self._subscription = subscription
            self._ready = True
            backoff = 0.05
            log.warning("pub/sub reconnected; resyncing %d topics", len(self.hub.topics()))
            self.hub.resync()

    async def ping(self) -> bool:
        """Subscribed and listening: a listener that ended (whatever the reason) leaves the node deaf."""
        return self._ready and self._listener is not None and not self._listener.done()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._subscription is not None:
            self._subscription.close()
        await self._pipe.close()


if TYPE_CHECKING:
    from server.bus.base import Broker

    _broker: Broker = RedisBroker(Redis())
