"""The `Broker` contract and what travels through it.

A `Delivery` is one event for one topic (`agent:<id>`, or a supervisor topic), encoded lazily and at
most once per wire format however many sockets receive it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from protocol.codec import Codec
from protocol.frames import ServerFrame


class Delivery:
    """One event bound for one topic; `payload(codec)` encodes it once per codec and caches it.

    A delivery with no frame (`Delivery.resync(topic)`) means "events may have been missed": the
    receiver reads what it lacks from the store's log.
    """

    __slots__ = ("_payloads", "frame", "topic")

    def __init__(self, topic: str, frame: ServerFrame | None) -> None:
        self.topic = topic
        self.frame = frame
        self._payloads: dict[str, bytes | str] = {}

    @classmethod
    def resync(cls, topic: str) -> Delivery:
        return cls(topic, None)

    def payload(self, codec: Codec) -> bytes | str:
        assert self.frame is not None
        cached = self._payloads.get(codec.subprotocol)
        if cached is None:
            cached = self._payloads[codec.subprotocol] = codec.encode(self.frame)
        return cached


Handler = Callable[[Delivery], None]
"""Receives deliveries for a topic. Must not block: it queues and returns (see `Broker.subscribe`)."""

Unsubscribe = Callable[[], Awaitable[None]]


class Broker(Protocol):
    """Fan-out of events to the sockets that want them, on this node and (for shared brokers) others.

    Guarantees every implementation keeps:
    - `publish` hands each delivery to every handler subscribed to its topic (on any node), in
      publish order per topic. Delivery is at most once: a handler that misses an event (a node or
      connection drop) recovers it from the store's per-agent log, by `seq`.
    - Handlers are called without awaiting; one slow socket never delays another.
    - `subscribe` returns once the subscription is live: events published afterwards reach it.
    - After a lost connection the broker reconnects and re-subscribes by itself, then sends every
      local handler a resync delivery and calls the `on_resync` callbacks.
    - While it cannot reach what it shares, `publish` and `subscribe` raise `Refused(UNAVAILABLE)`
      (never a raw connection error), and a failed `subscribe` leaves nothing subscribed.
    """

    async def publish(self, deliveries: Sequence[Delivery]) -> None: ...

    async def subscribe(self, topic: str, handler: Handler) -> Unsubscribe: ...

    async def start(self) -> None:
        """Open connections; after this, `subscribe` and `publish` work."""
        ...

    async def join(self, node_id: str) -> None:
        """The node goes on under a new id (it was presumed dead while alive): what is addressed to the
        node (its agents' events) is addressed to the new id from now on."""
        ...

    def on_resync(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever deliveries may have been missed (after a reconnect)."""
        ...

    def on_failure(self, callback: Callable[[str], None]) -> None:
        """Call `callback(operation)` on every failure of the broker's connection: `publish` or
        `subscribe` (which then raise `Refused(UNAVAILABLE)`), `unsubscribe`, or `connection` (the
        subscription connection was lost). For the node's metrics."""
        ...

    async def ping(self) -> bool:
        """True when subscriptions are live (for /readyz)."""
        ...

    async def close(self) -> None: ...
