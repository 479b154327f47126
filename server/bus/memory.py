"""The embedded broker: publishing is dispatching to this node's hub."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from server.bus.base import Delivery, Handler, Unsubscribe
from server.bus.hub import Hub


class MemoryBroker:
    """See `Broker`."""

    def __init__(self) -> None:
        self.hub = Hub()

    async def start(self) -> None:
        return None

    async def join(self, node_id: str) -> None:
        return None  # one node: everything published here is this node's

    def on_resync(self, callback: Callable[[], None]) -> None:
        self.hub.resync_callbacks.append(callback)

    def on_failure(self, callback: Callable[[str], None]) -> None:
        """Dispatching in process has no connection to lose: there is never a failure to report."""

    async def publish(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self.hub.dispatch(delivery)

    async def subscribe(self, topic: str, handler: Handler) -> Unsubscribe:
        self.hub.add(topic, handler)

        async def unsubscribe() -> None:
            self.hub.remove(topic, handler)

        return unsubscribe

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


if TYPE_CHECKING:
    from server.bus.base import Broker

    _broker: Broker = MemoryBroker()
